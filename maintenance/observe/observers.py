"""Who hears about a run that took its task: heartbeat pings (`heartbeat.py`) and Sentry
Crons check-ins (`checkins.py`). The runner calls `notify_started` once the run is recorded
and `notify_finished` with its outcome; skipped runs notify nobody. An observer is an
onlooker: whatever it raises is logged and never changes the run's outcome.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from maintenance.observe.checkins import SENTRY_CHECKINS
from maintenance.observe.heartbeat import HEARTBEATS
from maintenance.observe.log_events import OBSERVER_FAILED, log_event

if TYPE_CHECKING:
    from maintenance.models import TaskRun
    from maintenance.outcome import RunOutcome
    from maintenance.registry import Task

logger = logging.getLogger("maintenance.observers")


class RunObserver(Protocol):
    def run_started(self, task: Task, run: TaskRun) -> None: ...

    def run_finished(self, outcome: RunOutcome) -> None: ...


def observers() -> list[RunObserver]:
    return [HEARTBEATS, SENTRY_CHECKINS]


def notify_started(task: Task, run: TaskRun) -> None:
    for observer in observers():
        try:
            observer.run_started(task, run)
        except Exception as exc:
            _failed(observer, task.name, exc)


def notify_finished(outcome: RunOutcome) -> None:
    for observer in observers():
        try:
            observer.run_finished(outcome)
        except Exception as exc:
            _failed(observer, outcome.task, exc)


def _failed(observer: RunObserver, task: str, exc: Exception) -> None:
    log_event(
        logger,
        logging.WARNING,
        OBSERVER_FAILED,
        task=task,
        observer=type(observer).__name__,
        error=f"{type(exc).__name__}: {exc}",
    )
