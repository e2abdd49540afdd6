"""How this process's in-process scheduler is doing, for status: whether its loop runs,
how often it crashed and was restarted, and the last error.

Kept apart from `scheduler.py` (which imports the runner, which imports status) so that
status can read it without a circle. The record is per process: each gunicorn worker
answers for its own thread; a management command has none.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from maintenance.isotime import iso_utc
from maintenance.logs.redaction import redact

ERROR_TEXT_LIMIT = 300


@dataclass
class SchedulerHealth:
    """One scheduler's record, kept by its supervising thread (`thread`)."""

    thread: threading.Thread | None = None
    restarting: bool = False  # crashed, waiting out its backoff
    restarts: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None

    @property
    def running(self) -> bool:
        alive = self.thread is not None and self.thread.is_alive()
        return alive and not self.restarting

    def crashed(self, exc: BaseException) -> None:
        """Note the error that ended the loop: its first line, with any secret redacted
        (status is served over HTTP). The wall clock, not the runner's: that may be what
        failed."""
        lines = f"{type(exc).__name__}: {exc}".strip().splitlines()
        self.last_error = redact(lines[0])[:ERROR_TEXT_LIMIT]
        self.last_error_at = timezone.now()
        self.restarting = True

    def restarted(self) -> None:
        self.restarts += 1
        self.restarting = False

    def body(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "running": self.running,
            "restarts": self.restarts,
            "lastError": self.last_error,
            "lastErrorAt": iso_utc(self.last_error_at),
        }


_in_process: SchedulerHealth | None = None


def watch(health: SchedulerHealth | None) -> None:
    """Make `health` the record status reports for this process (None: no scheduler)."""
    global _in_process
    _in_process = health


def in_process() -> dict[str, Any]:
    """The `scheduler` object of the status body: this process's scheduler, or a record
    that says none runs here."""
    return (_in_process or SchedulerHealth()).body()
