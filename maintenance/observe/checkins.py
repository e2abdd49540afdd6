"""Sentry Crons check-ins for every run that takes its task (with `SENTRY_DSN` set).

A run observer (see `observers.py`): when a run starts, it sends an `in_progress`
check-in with a fresh `check_in_id` and the monitor's configuration (the cron expression
in force, `checkin_margin`, `max_runtime`, UTC), so Sentry creates the monitor and keeps it
in step with the settings; when the run ends, `ok` or `error` with the same id and the
run's duration. The monitor slug is the task name. A run skipped because another runner
holds the task notifies no observer, so it sends nothing.

sentry-sdk queues each check-in for its background worker and returns at once: a slow or
unreachable Sentry never delays or fails a task (an unsent check-in is dropped after the
SDK's own timeouts; a process exiting waits at most its `shutdown_timeout`, 2 s, to flush).
"""

from __future__ import annotations

import math
import threading
import uuid
from typing import TYPE_CHECKING, Any

import sentry_sdk
from sentry_sdk.crons import MonitorStatus, capture_checkin

from maintenance.conf import maintenance_settings

if TYPE_CHECKING:
    from maintenance.models import TaskRun
    from maintenance.outcome import RunOutcome
    from maintenance.registry import Task


def monitor_config(task: Task) -> dict[str, Any]:
    """What Sentry should expect of `task`: its cron schedule in force, in UTC."""
    margin = maintenance_settings.SENTRY_CHECKIN_MARGIN_MINUTES
    if margin is None:
        # A tick may be served until the next one (the starting deadline's default).
        margin = _minutes(task.every.total_seconds())
    return {
        "schedule": {"type": "crontab", "value": task.schedule},
        "checkin_margin": margin,
        "max_runtime": _minutes(task.max_runtime_seconds),
        "timezone": "UTC",
    }


def _minutes(seconds: float) -> int:
    """Sentry takes whole minutes; round up, and never 0."""
    return max(1, math.ceil(seconds / 60))


class SentryCheckIns:
    """The run observer; runs on any thread (scheduler, request, command)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, str] = {}  # run id -> check_in_id of its in_progress

    def run_started(self, task: Task, run: TaskRun) -> None:
        if not sentry_sdk.get_client().dsn:  # SENTRY_DSN unset: the SDK is not initialised
            return
        check_in_id = uuid.uuid4().hex
        with self._lock:
            self._open[run.pk] = check_in_id
        capture_checkin(
            monitor_slug=task.name,
            check_in_id=check_in_id,
            status=MonitorStatus.IN_PROGRESS,
            monitor_config=monitor_config(task),
        )

    def run_finished(self, outcome: RunOutcome) -> None:
        with self._lock:
            check_in_id = self._open.pop(outcome.run_id, None) if outcome.run_id else None
        if check_in_id is None:  # Sentry off when it started, or no run was recorded
            return
        capture_checkin(
            monitor_slug=outcome.task,
            check_in_id=check_in_id,
            status=MonitorStatus.ERROR if outcome.failed else MonitorStatus.OK,
            duration=outcome.duration_ms / 1000,
        )


SENTRY_CHECKINS = SentryCheckIns()
