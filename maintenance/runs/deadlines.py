"""The deadline of the run in progress, so that loops deep inside a task can stop in time.

The runner sets a `Deadline` around the task function; the purge loop and the email send
loop ask it between batches (`check`) and bound each SQL statement or socket wait by the
time left (`statement_timeout_ms`, `remaining`). Outside a run there is no deadline.

An HTTP-triggered run also has a time budget (`MAINTENANCE_HTTP_BUDGET_SECONDS`, see
`budget.py`) so that it answers before the web server gives up on the request. The budget
shortens the same deadline, so every loop that honours the deadline honours it too; only
what reaching it means differs: `failure()` then raises `BudgetSpent`, which the runner
turns into a successful run of what was done.

A run can also be stopped from outside (`Deadline.cancel`, safe from another thread or a
signal handler): once cancelled its deadline counts as passed, so the same loops stop at
their next check, and `failure()` raises the reason given. The lease renewal cancels a run
that lost its hold on the task; the scheduler cancels its run in progress when it stops
(`cancellable`: every deadline set inside the block follows that `Cancellation`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from maintenance.outcome import TaskFailed


class BudgetSpent(TaskFailed):
    """An HTTP run reached its time budget before its deadline: it stops as it would at
    the deadline, but what it did is a success and the next trigger continues."""

    def __init__(self, budget: float, result: Mapping[str, Any]) -> None:
        super().__init__(f"Stopped after the {budget:g} s HTTP budget", result)
        self.budget = budget


class Cancellation:
    """A request to stop early, with its reason; the first reason given stands. A
    cancellation made with a `parent` also counts as cancelled once its parent is."""

    def __init__(self, parent: Cancellation | None = None) -> None:
        self.parent = parent
        self._reason = ""  # one attribute write: safe from any thread or signal handler

    def cancel(self, reason: str) -> None:
        if not self._reason:
            self._reason = reason

    @property
    def reason(self) -> str:
        """Why the runs under it must stop; "" while not cancelled."""
        return self._reason or (self.parent.reason if self.parent is not None else "")


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock that a run must not go past: `seconds` after
    `started`, or `budget` seconds when that comes sooner."""

    seconds: float
    started: float
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    budget: float | None = None
    cancellation: Cancellation = field(default_factory=Cancellation, compare=False)

    def cancel(self, reason: str) -> None:
        """Make the deadline count as passed now; the run fails with `reason`."""
        self.cancellation.cancel(reason)

    def remaining(self) -> float:
        """Seconds left, never below zero; none once cancelled."""
        if self.cancellation.reason:
            return 0.0
        return max(0.0, self.started + self._limit() - self.clock())

    def _limit(self) -> float:
        return self.seconds if self.budget is None else min(self.seconds, self.budget)

    def passed(self) -> bool:
        return self.remaining() <= 0.0

    def statement_timeout_ms(self) -> int:
        """The PostgreSQL statement_timeout for the next statement: the time left, at
        least 1 ms (0 would mean no timeout at all)."""
        return max(1, math.ceil(self.remaining() * 1000))

    def failure(self, result: Mapping[str, Any]) -> TaskFailed:
        """The timed-out failure, carrying the counts done so far; `BudgetSpent` when the
        budget, not the deadline, is what ran out; the reason when it was cancelled."""
        if self.cancellation.reason:
            return TaskFailed(self.cancellation.reason, result)
        if self.budget is not None and self.budget < self.seconds:
            return BudgetSpent(self.budget, result)
        return TaskFailed(f"Timed out after {self.seconds:g} s", result)

    def check(self, result: Mapping[str, Any]) -> None:
        """Raise the timed-out failure when the deadline has passed."""
        if self.passed():
            raise self.failure(result)


_current: ContextVar[Deadline | None] = ContextVar("maintenance_deadline", default=None)
_scope: ContextVar[Cancellation | None] = ContextVar("maintenance_cancellation", default=None)


def current() -> Deadline | None:
    """The deadline of the run in progress, or None outside a run."""
    return _current.get()


@contextmanager
def deadline_of(
    seconds: float, clock: Callable[[], float] = time.monotonic, budget: float | None = None
) -> Iterator[Deadline]:
    """Put a deadline of `seconds` from now (`budget` seconds, when sooner) in force for the
    code inside the block."""
    cancellation = Cancellation(parent=_scope.get())
    deadline = Deadline(seconds, clock(), clock, budget, cancellation)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


@contextmanager
def cancellable(cancellation: Cancellation) -> Iterator[Cancellation]:
    """Every deadline set inside the block is cancelled with `cancellation`, even one set
    after it was cancelled (a run that starts as its scheduler stops ends at once)."""
    token = _scope.set(cancellation)
    try:
        yield cancellation
    finally:
        _scope.reset(token)
