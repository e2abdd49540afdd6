"""What a run tells whoever listens: two Django signals the runner sends, so the run layer
never imports its observers (heartbeat pings and Sentry Crons check-ins, connected by
`maintenance/observe/observers.py` when the app is ready).

`run_started` goes out once the run holds its task (`task`, `run`), `run_finished` with its
outcome (`outcome`); skipped runs send nothing. They are sent with Django's
`Signal.send_robust`, which calls every receiver and hands back what each raised instead
of letting it reach the run or the other receivers: an observer is an onlooker and never
changes a run's outcome. What one raised is logged here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.dispatch import Signal

from maintenance.logs.log_events import OBSERVER_FAILED, log_event

if TYPE_CHECKING:
    from maintenance.models import TaskRun
    from maintenance.outcome import RunOutcome
    from maintenance.registry import Task

logger = logging.getLogger("maintenance.observers")

run_started = Signal()  # sender: the task name; task=Task, run=TaskRun
run_finished = Signal()  # sender: the task name; outcome=RunOutcome


def notify_started(task: Task, run: TaskRun) -> None:
    _log_failures(task.name, run_started.send_robust(sender=task.name, task=task, run=run))


def notify_finished(outcome: RunOutcome) -> None:
    _log_failures(outcome.task, run_finished.send_robust(sender=outcome.task, outcome=outcome))


def _log_failures(task: str, answers: Iterable[tuple[Any, Any]]) -> None:
    for receiver, answer in answers:
        if isinstance(answer, Exception):
            log_event(
                logger,
                logging.WARNING,
                OBSERVER_FAILED,
                task=task,
                observer=getattr(receiver, "observer", getattr(receiver, "__name__", "?")),
                error=f"{type(answer).__name__}: {answer}",
            )
