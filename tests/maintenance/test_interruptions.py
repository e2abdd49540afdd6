"""A run its process ends mid-run (SIGTERM, SystemExit as gunicorn's worker timeout
raises it, Ctrl-C) is closed `failed` with that reason and frees its task at once; the
interruption then goes on, so the process still ends."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from maintenance.models import RunStatus, TaskRun
from maintenance.runs.interruptions import Terminated
from maintenance.runs.runner import run_task
from tests.factories import fake_task
from tests.maintenance.test_deadlines import _newest_of_five_expired_rows_locked

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def signalled_after(seconds: float, signum: int) -> Iterator[None]:
    """Send `signum` to this process's main thread `seconds` into the block."""
    timer = threading.Timer(seconds, signal.pthread_kill, [threading.main_thread().ident, signum])
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@contextmanager
def signalled_once_blocked(signum: int) -> Iterator[None]:
    """Send `signum` to this process's main thread once a statement of the test database
    waits on a row lock (not earlier: an interruption while a statement is still running
    makes psycopg cancel it, and through a pooler that cancel can land on a later one)."""
    import psycopg

    from tests.processes import test_database_url, wait_for

    def blocked() -> bool:
        with psycopg.connect(test_database_url(), autocommit=True) as watcher:
            query = (
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return watcher.execute(query).fetchone()[0] > 0

    def signal_when_blocked() -> None:
        if wait_for(blocked, timeout=30, interval=0.05):
            signal.pthread_kill(threading.main_thread().ident, signum)

    watcher = threading.Thread(target=signal_when_blocked)
    watcher.start()
    try:
        yield
    finally:
        watcher.join()


@contextmanager
def exiting_on(signum: int) -> Iterator[None]:
    """`signum` raises SystemExit(1), as gunicorn's SIGABRT handler does on a worker timeout."""
    previous = signal.signal(signum, lambda *_: sys.exit(1))
    try:
        yield
    finally:
        signal.signal(signum, previous)


def the_only_run(task: str) -> TaskRun:
    run = TaskRun.objects.get(task=task)
    assert run.finished_at is not None
    assert not TaskRun.objects.filter(task=task, status=RunStatus.RUNNING).exists(), "free at once"
    return run


def test_sigterm_mid_run_closes_the_run_failed_and_ends_the_process(isolated_registry):
    def slow(**options):
        time.sleep(5)
        return {"count": 1}

    isolated_registry.register(fake_task(func=slow))
    with signalled_after(0.2, signal.SIGTERM), pytest.raises(Terminated) as ended:
        run_task("demo", "command")

    assert ended.value.code == 143  # the exit status SIGTERM's default would have left
    run = the_only_run("demo")
    assert (run.status, run.error) == (RunStatus.FAILED, "Interrupted: SIGTERM")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the handler is the run's only"


def test_keyboard_interrupt_mid_run_closes_the_run_failed(isolated_registry):
    def interrupted(**options):
        raise KeyboardInterrupt

    isolated_registry.register(fake_task(func=interrupted))
    with pytest.raises(KeyboardInterrupt):
        run_task("demo", "command")

    run = the_only_run("demo")
    assert (run.status, run.error) == (RunStatus.FAILED, "Interrupted: KeyboardInterrupt")


@pytest.mark.postgres
def test_sigterm_during_a_cleanup_waiting_on_the_database_closes_it_failed(settings):
    locked = _newest_of_five_expired_rows_locked(settings, max_runtime="60")
    with locked, signalled_once_blocked(signal.SIGTERM), pytest.raises(Terminated):
        run_task("pkce_cleanup", "command")

    run = the_only_run("pkce_cleanup")
    assert (run.status, run.error) == (RunStatus.FAILED, "Interrupted: SIGTERM")
    assert run_task("pkce_cleanup", "command").result == {"deletedCount": 1}


@pytest.mark.postgres
def test_system_exit_during_a_cleanup_waiting_on_the_database_closes_it_failed(settings):
    locked = _newest_of_five_expired_rows_locked(settings, max_runtime="60")
    gunicorn_like = exiting_on(signal.SIGUSR1)
    with locked, gunicorn_like, signalled_once_blocked(signal.SIGUSR1), pytest.raises(SystemExit):
        run_task("pkce_cleanup", "command")

    run = the_only_run("pkce_cleanup")
    assert run.status == RunStatus.FAILED
    assert run.error == "Interrupted: SystemExit(1) (the process is exiting)"
    assert run_task("pkce_cleanup", "command").result == {"deletedCount": 1}
