"""The in-process scheduler: a daemon thread in each serving process that wakes at every
tick of each task's schedule, and serves the current tick of the cleanups once at start.

Any number of processes (gunicorn workers, several hosts, the crontab, a worker container
running `run_scheduler`) may run it against one database without doing the work twice:
they all aim at the same ticks, and the runner records at most one run per (task, tick)
(the run log's unique constraint decides), so the others record a skip.

It is started by `pluggedin/wsgi.py` and `pluggedin/asgi.py`, which only serving
processes import (runserver imports them in its serving child, never in the autoreloader
parent; gunicorn and uvicorn in each worker), so `migrate`, `shell` and other commands
never start it. With IN_PROCESS_SCHEDULER=false (the test settings set it) it does not start.

Stopping it (`stop()`: at the process's exit, or `run_scheduler` on SIGTERM or Ctrl-C)
cancels the run in progress through its deadline (`maintenance.runs.deadlines`): the task
stops at its next check between batches or messages, an email run hands its batch back,
and the run is closed `failed` ("Interrupted: the process is shutting down ..."), rather
than dying with its daemon thread and leaving its row `running` for its lease.

A bug that escapes the loop does not end the thread: it logs the error and starts the loop
again after a backoff (1 s, doubling, at most 60 s), and status shows the restarts and
the last error (`scheduler_health.py`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import datetime, timedelta

from django.db import connections

from maintenance import registry
from maintenance.checks import configuration_error
from maintenance.conf import maintenance_settings
from maintenance.logs.log_events import (
    SCHEDULER_CRASHED,
    SCHEDULER_DISABLED,
    SCHEDULER_ERROR,
    SCHEDULER_RAN,
    SCHEDULER_SKIPPED,
    SCHEDULER_STARTED,
    SCHEDULER_STOPPED,
    log_event,
)
from maintenance.models import Trigger
from maintenance.observe import scheduler_health
from maintenance.observe.scheduler_health import SchedulerHealth
from maintenance.runs import clock
from maintenance.runs.deadlines import Cancellation, cancellable
from maintenance.runs.runner import run_task

logger = logging.getLogger("maintenance.scheduler")

MIN_SLEEP = timedelta(seconds=0.1)  # never spin, even when a due time is in the past
RETRY_AFTER_ERROR = timedelta(seconds=60)  # the run log itself was unreachable
SHUTDOWN_TIMEOUT_SECONDS = 10.0  # let a run in progress stop and record its outcome
SHUTTING_DOWN = "Interrupted: the process is shutting down ({why})"
FORK_WAIT_SECONDS = 10.0  # how long a fork waits for the scheduler's step in progress
THREAD_NAME = "maintenance-scheduler"
FIRST_RESTART_DELAY_SECONDS = 1.0  # after a crash of the loop; doubles while it keeps crashing
MAX_RESTART_DELAY_SECONDS = 60.0  # also how long a loop must run for its crashes to be forgotten


def restart_delay(crashes: int) -> float:
    """Seconds to wait before restarting a loop that crashed `crashes` times in a row."""
    return min(FIRST_RESTART_DELAY_SECONDS * 2 ** min(crashes - 1, 16), MAX_RESTART_DELAY_SECONDS)


class Scheduler:
    """The loop, shared by the background thread and `manage.py run_scheduler`."""

    def __init__(self, tasks: list[registry.Task] | None = None) -> None:
        self.tasks = tasks if tasks is not None else registry.all_tasks()
        self.stop_event = threading.Event()
        self.due: dict[str, datetime] = {}
        self.thread: threading.Thread | None = None
        self.busy = threading.RLock()  # held while a step runs; see `_hold_for_fork`
        self.cancellation = Cancellation()  # of every run it starts; see `stop`
        self.health = SchedulerHealth()

    def describe(self) -> str:
        """The tasks and their schedules, for the start-up line."""
        return ", ".join(f"{t.name} ({t.schedule})" for t in self.tasks)

    def run_forever(self) -> None:
        """Run until `stop()`: the startup pass first, then each task when it falls due.
        Refused settings (a schedule that never fires, a retired interval) stop it before
        the first run, with one line."""
        with self.busy:
            if refused_settings():
                return
            tasks = self.describe()
            log_event(logger, logging.INFO, SCHEDULER_STARTED, pid=os.getpid(), tasks=tasks)
            self.plan_startup()
        while not self.stop_event.is_set():
            with self.busy:
                self.run_due()
            self.stop_event.wait(self.seconds_until_next_due())
        log_event(logger, logging.INFO, SCHEDULER_STOPPED, pid=os.getpid())

    def plan_startup(self) -> None:
        """A startup run serves the current tick now, unless another trigger already
        served it; the others wait for their next tick."""
        now = clock.now()
        for task in self.tasks:
            self.due[task.name] = now if task.run_at_startup else self._first_due(task, now)
        connections.close_all()

    def run_due(self) -> None:
        """Attempt every task whose time has come; one failure never stops the others."""
        for task in self.tasks:
            if self.stop_event.is_set():
                return
            if self.due[task.name] <= clock.now():
                self.due[task.name] = self._attempt(task)

    def seconds_until_next_due(self) -> float | None:
        if not self.due:
            return None
        wait = min(self.due.values()) - clock.now()
        return max(wait, MIN_SLEEP).total_seconds()

    def _attempt(self, task: registry.Task) -> datetime:
        """Serve `task`'s current tick (the runner skips it when another trigger already
        did) and return its next tick, when the loop wakes again. Connections are closed
        after each attempt: a thread that sleeps for an hour must not hold one."""
        now = clock.now()
        try:
            with cancellable(self.cancellation):
                outcome = run_task(task.name, Trigger.SCHEDULER)
            if outcome.failed and outcome.run_id is None:  # nothing could be recorded
                error = outcome.error
                log_event(logger, logging.ERROR, SCHEDULER_ERROR, task=task.name, error=error)
                return now + RETRY_AFTER_ERROR
            event = SCHEDULER_SKIPPED if outcome.skipped else SCHEDULER_RAN
            details = {"status": outcome.status, "run": outcome.run_id}
            due = task.cron_schedule.next_tick(clock.now())
        except Exception:  # the run log is unreachable; the runner itself never raises
            log_event(logger, logging.ERROR, SCHEDULER_ERROR, task=task.name, exc_info=True)
            return now + RETRY_AFTER_ERROR
        finally:
            connections.close_all()
        next_in = f"{int((due - clock.now()).total_seconds())}s"
        log_event(logger, logging.INFO, event, task=task.name, **details, next_in=next_in)
        return due

    def _first_due(self, task: registry.Task, now: datetime) -> datetime:
        """A task without a startup run waits for its next tick."""
        return task.cron_schedule.next_tick(now)

    def start_thread(self) -> None:
        self.thread = threading.Thread(target=self.run_supervised, name=THREAD_NAME, daemon=True)
        self.health.thread = self.thread
        self.thread.start()

    def run_supervised(self) -> None:
        """`run_forever`, started again whenever a bug in the loop itself raises: a thread
        that died would leave this process without a scheduler and nobody would notice.
        Each crash is logged with its traceback and counted; the restart waits a backoff
        so a loop that fails at once does not spin."""
        crashes = 0
        while not self.stop_event.is_set():
            began = time.monotonic()
            try:
                self.run_forever()
                return
            except Exception as exc:
                # A loop that ran a good while before crashing starts the backoff afresh.
                ran_long = time.monotonic() - began > MAX_RESTART_DELAY_SECONDS
                crashes = 1 if ran_long else crashes + 1
                delay = self._crashed(exc, crashes)
            if self.stop_event.wait(delay):
                return
            self.health.restarted()

    def _crashed(self, exc: Exception, crashes: int) -> float:
        """Record and log the crash (inside its `except`, for the traceback); return how
        long to wait before the restart."""
        delay = restart_delay(crashes)
        self.health.crashed(exc)
        fields = {"pid": os.getpid(), "restart_in": f"{delay:g}s", "restarts": self.health.restarts}
        log_event(logger, logging.ERROR, SCHEDULER_CRASHED, exc_info=True, **fields)
        return delay

    def stop(
        self, timeout: float = SHUTDOWN_TIMEOUT_SECONDS, why: str = "scheduler stopped"
    ) -> None:
        """Stop the loop and the run in progress, which is closed `failed` saying `why`;
        wait up to `timeout` seconds for the thread to record it. Safe in a signal handler."""
        self.stop_event.set()
        self.cancellation.cancel(SHUTTING_DOWN.format(why=why))
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)


_running: Scheduler | None = None
_start_lock = threading.Lock()


def disabled_reason() -> str | None:
    if not maintenance_settings.IN_PROCESS_SCHEDULER:
        return "IN_PROCESS_SCHEDULER is false"
    return None


def refused_settings() -> bool:
    """True, after one ERROR line saying why, when the settings are refused."""
    refused = configuration_error()
    if refused:
        reason = f"configuration error: {refused}"
        log_event(logger, logging.ERROR, SCHEDULER_DISABLED, pid=os.getpid(), reason=reason)
    return bool(refused)


def start_in_process() -> Scheduler | None:
    """Start this process's scheduler thread, once; called by the WSGI and ASGI modules.

    Forking a process that runs it (gunicorn --preload imports the application in the
    master) starts a fresh one in the child, as threads do not survive a fork; the
    master's own keeps running, and the run log keeps them all to one run per tick.
    """
    global _running
    reason = disabled_reason()
    if reason:
        log_event(logger, logging.INFO, SCHEDULER_DISABLED, pid=os.getpid(), reason=reason)
        return None
    if refused_settings():
        return None
    with _start_lock:
        if _running is None:
            _running = Scheduler()
            _running.start_thread()
            scheduler_health.watch(_running.health)
            atexit.register(_running.stop)
        return _running


_held_for_fork: Scheduler | None = None


def _hold_for_fork() -> None:
    """Let the scheduler finish its step in progress before the process forks (gunicorn
    --preload forks workers from a master that runs one). A child inherits every lock as
    it was at the fork, and nobody in the child would ever release one held by the
    scheduler thread: a worker forked while that thread was importing a module for the
    first time hung forever on that module's import lock. Steps last milliseconds; a
    longer one (a large backlog) delays the fork by at most `FORK_WAIT_SECONDS`."""
    global _held_for_fork
    scheduler = _running
    if scheduler is not None and scheduler.busy.acquire(timeout=FORK_WAIT_SECONDS):
        _held_for_fork = scheduler


def _release_after_fork_in_parent() -> None:
    global _held_for_fork
    if _held_for_fork is not None:
        _held_for_fork, scheduler = None, _held_for_fork
        scheduler.busy.release()


def _restart_after_fork() -> None:
    global _running, _start_lock, _held_for_fork
    _held_for_fork = None
    if _running is None:
        return
    _running, _start_lock = None, threading.Lock()  # the parent's lock may have been held
    start_in_process()


os.register_at_fork(
    before=_hold_for_fork,
    after_in_parent=_release_after_fork_in_parent,
    after_in_child=_restart_after_fork,
)
