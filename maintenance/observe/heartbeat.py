"""Optional heartbeat pings to an external monitor (healthchecks.io style).

A task with a ping URL (`<TASK>_HEARTBEAT_URL`, e.g. `PKCE_CLEANUP_HEARTBEAT_URL`, or an
entry in the `MAINTENANCE_HEARTBEAT_URLS` mapping) pings `<url>/start` when a run starts,
`<url>` when it succeeds and `<url>/fail` when it fails, so the monitor alerts when the
pings stop or fail. The monitor is an observer: an unreachable or failing monitor is
logged at warning and never fails or delays the task beyond the short timeout.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from maintenance.conf import maintenance_settings, task_setting
from maintenance.logs.log_events import HEARTBEAT_FAILED, log_event

if TYPE_CHECKING:
    from maintenance.models import TaskRun
    from maintenance.outcome import RunOutcome
    from maintenance.registry import Task

logger = logging.getLogger("maintenance.heartbeat")

START = "start"
SUCCESS = ""
FAIL = "fail"


def heartbeat_url(task: str) -> str | None:
    url = task_setting(task, "HEARTBEAT_URL")
    url = url or (maintenance_settings.MAINTENANCE_HEARTBEAT_URLS or {}).get(task)
    return url or None


def ping(task: str, signal: str) -> bool:
    """Ping the task's monitor with `signal` (START, SUCCESS or FAIL); True when it answered
    2xx, False when it did not or no URL is configured. Never raises."""
    url = heartbeat_url(task)
    if not url:
        return False
    target = url.rstrip("/") + (f"/{signal}" if signal else "")
    timeout = maintenance_settings.MAINTENANCE_HEARTBEAT_TIMEOUT_SECONDS
    try:
        if urlsplit(target).scheme not in ("http", "https"):
            raise ValueError("heartbeat URLs must be http:// or https://")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            target, headers={"User-Agent": "pluggedin-maintenance"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read(1024)
        return True
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # The ping URL is a credential of sorts: log its host, never the whole URL.
        log_event(
            logger,
            logging.WARNING,
            HEARTBEAT_FAILED,
            task=task,
            ping=signal or "success",
            host=urlsplit(url).hostname,
            error=f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}",
        )
        return False


class Heartbeats:
    """The run observer (see `observers.py`) that pings each task's monitor."""

    def run_started(self, task: Task, run: TaskRun) -> None:
        ping(task.name, START)

    def run_finished(self, outcome: RunOutcome) -> None:
        ping(outcome.task, FAIL if outcome.failed else SUCCESS)


HEARTBEATS = Heartbeats()
