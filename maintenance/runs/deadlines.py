"""The deadline of the run in progress, so that loops deep inside a task can stop in time.

The runner sets a `Deadline` around the task function; the purge loop and the email send
loop ask it between batches (`check`) and bound each SQL statement or socket wait by the
time left (`statement_timeout_ms`, `remaining`). Outside a run there is no deadline.
"""

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from maintenance.outcome import TaskFailed


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock that a run must not go past."""

    seconds: float
    started: float
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def remaining(self) -> float:
        """Seconds left, never below zero."""
        return max(0.0, self.started + self.seconds - self.clock())

    def passed(self) -> bool:
        return self.remaining() <= 0.0

    def statement_timeout_ms(self) -> int:
        """The PostgreSQL statement_timeout for the next statement: the time left, at
        least 1 ms (0 would mean no timeout at all)."""
        return max(1, math.ceil(self.remaining() * 1000))

    def failure(self, result: Mapping[str, Any]) -> TaskFailed:
        """The timed-out failure, carrying the counts done so far."""
        return TaskFailed(f"Timed out after {self.seconds:g} s", result)

    def check(self, result: Mapping[str, Any]) -> None:
        """Raise the timed-out failure when the deadline has passed."""
        if self.passed():
            raise self.failure(result)


_current: ContextVar[Deadline | None] = ContextVar("maintenance_deadline", default=None)


def current() -> Deadline | None:
    """The deadline of the run in progress, or None outside a run."""
    return _current.get()


@contextmanager
def deadline_of(seconds: float, clock: Callable[[], float] = time.monotonic) -> Iterator[Deadline]:
    """Put a deadline of `seconds` from now in force for the code inside the block."""
    deadline = Deadline(seconds=seconds, started=clock(), clock=clock)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)
