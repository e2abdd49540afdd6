"""Who hears about a run that took its task: heartbeat pings (`heartbeat.py`) and Sentry
Crons check-ins (`checkins.py`). `connect()` hooks each onto the runner's signals
(`maintenance/runs/signals.py`) once the app is ready; the runner never imports them.
Each observer is its own receiver, so one that raises (logged by the sender) keeps
neither the run nor the other observer from going on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from maintenance.observe.checkins import SENTRY_CHECKINS
from maintenance.observe.heartbeat import HEARTBEATS
from maintenance.runs.signals import run_finished, run_started


class RunObserver(Protocol):
    def run_started(self, task: Any, run: Any) -> None: ...

    def run_finished(self, outcome: Any) -> None: ...


def observers() -> list[RunObserver]:
    return [HEARTBEATS, SENTRY_CHECKINS]


def connect() -> None:
    """Hook every observer onto the run signals (idempotent: one receiver each)."""
    for observer in observers():
        name = type(observer).__name__
        started = _receiver(name, lambda o=observer, **kw: o.run_started(kw["task"], kw["run"]))
        finished = _receiver(name, lambda o=observer, **kw: o.run_finished(kw["outcome"]))
        run_started.connect(started, weak=False, dispatch_uid=f"{name}.run_started")
        run_finished.connect(finished, weak=False, dispatch_uid=f"{name}.run_finished")


def _receiver(name: str, call: Callable[..., None]) -> Callable[..., None]:
    def receive(sender: str, **kwargs: Any) -> None:
        call(**kwargs)

    receive.observer = name  # type: ignore[attr-defined]  # named in the failure's log line
    return receive
