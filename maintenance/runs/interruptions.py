"""Runs ended from outside: the process is told to stop in the middle of a run.

gunicorn ends a sync worker whose request outlives `--timeout` with SIGABRT, whose handler
raises `SystemExit(1)` wherever the run is (and SIGKILLs it a second later); Ctrl-C raises
`KeyboardInterrupt`; SIGTERM kills a management command (cron, systemd, a container stop)
outright unless something turns it into an exception. None of these is an `Exception`, so
each passes every `except Exception` and would leave the run `running`, its emails held
for their lease. The runner catches them around the task function: the run is closed
`failed` with the reason, which frees its task, and the exception goes on, so the process
still ends. The emails app hands its claimed emails back on the way up
(`emails.outbox.lanes`, through `emails.outbox.claims.hand_back`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

GUNICORN_TIMEOUT = (
    "Interrupted: SystemExit (gunicorn's worker timeout ended the worker mid-run; keep"
    " MAINTENANCE_HTTP_BUDGET_SECONDS below gunicorn's --timeout)"
)


class Terminated(SystemExit):
    """SIGTERM during a run, raised so the run is closed before the process exits; it
    exits with 143, the status the signal itself would have left."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def interruption(exc: BaseException) -> str:
    """The run's error when `exc` ends the process rather than the run; "" for an
    ordinary exception."""
    if isinstance(exc, Exception):
        return ""
    if isinstance(exc, Terminated):
        return "Interrupted: SIGTERM"
    if isinstance(exc, SystemExit):
        if _raised_in(exc, "gunicorn", "handle_abort"):
            return GUNICORN_TIMEOUT
        return f"Interrupted: SystemExit({exc.code!r}) (the process is exiting)"
    return f"Interrupted: {type(exc).__name__}"


def _raised_in(exc: BaseException, package: str, function: str) -> bool:
    """Whether `exc` was raised by `function` of `package` (a signal handler's frame)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return code.co_name == function and f"/{package}/" in code.co_filename


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While the block runs, SIGTERM raises `Terminated` instead of ending the process at
    once. Only in the main thread, and only where nothing else handles SIGTERM: gunicorn's
    worker lets the request finish, `run_scheduler` cancels its run's deadline (the run
    stops at its next batch or message, closed `failed`)."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()
