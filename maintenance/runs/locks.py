"""Single-flight locks: one run of a task at a time, across threads, processes and hosts.

A task is held through its lease row in `maintenance_task_locks` (who: host and pid; since
when; until when), the same way on every database. Taking it is one `INSERT`, or one
`UPDATE` of a lease that has lapsed; while the run lives a thread renews the lease every
third of `MAINTENANCE_LOCK_LEASE_SECONDS`; the run's end deletes the row. Each step is one
short transaction of its own, so the lock behaves the same on a direct connection and
behind a session- or transaction-mode pooler (PgBouncer, Supabase, Neon, RDS Proxy), where
consecutive transactions of one client run on different server connections and a
session-level advisory lock would stay behind on whichever server connection took it.

A runner that dies (kill -9, a lost host) leaves its row, and its lease lapses at most
`MAINTENANCE_LOCK_LEASE_SECONDS` after its last renewal; the next runner then takes the
task over. Nothing else is held in the database: no advisory lock, no open transaction.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from maintenance.conf import maintenance_settings
from maintenance.models import TaskLock
from maintenance.observe.log_events import LOCK_RELEASE_FAILED, LOCK_RENEWAL_FAILED, log_event
from maintenance.runs.host import host_name
from maintenance.runs.reconnect import on_a_working_connection

logger = logging.getLogger(__name__)

# How long past its deadline a run keeps its lease: time to record its timed-out end.
DEADLINE_GRACE = timedelta(seconds=30)


@dataclass
class Claim:
    """The answer of `task_lock`: truthy when this caller holds the task.

    `since` is when this caller took it; `holder` describes the other runner when it
    did not (`host web-1, pid 42, since 2026-01-01T00:00:00Z`)."""

    held: bool
    since: datetime | None = None
    holder: str = "an unknown runner"

    def __bool__(self) -> bool:
        return self.held


@contextmanager
def task_lock(task: str, deadline_seconds: float | None = None) -> Iterator[Claim]:
    """Hold `task` for the block when no other runner does; yield the `Claim`.

    With `deadline_seconds` (the run's max runtime) the lease is never renewed past it plus
    `DEADLINE_GRACE`, so a run stuck beyond its deadline lets the next runner in."""
    owner = uuid.uuid4().hex
    lease = timedelta(seconds=maintenance_settings.MAINTENANCE_LOCK_LEASE_SECONDS)
    since = timezone.now()
    if not _take(task, owner, since, lease):
        yield Claim(held=False, holder=_holder(task))
        return
    last = None
    if deadline_seconds is not None:
        last = since + timedelta(seconds=deadline_seconds) + DEADLINE_GRACE
    renewal = _Renewal(task, owner, lease, last)
    renewal.start()
    try:
        yield Claim(held=True, since=since)
    finally:
        renewal.stop()
        _release(task, owner)


def _take(task: str, owner: str, now: datetime, lease: timedelta) -> bool:
    where = {"host": host_name(), "pid": os.getpid()}
    try:
        with transaction.atomic():
            TaskLock.objects.create(
                task=task, owner=owner, acquired_at=now, expires_at=now + lease, **where
            )
        return True
    except IntegrityError:
        if TaskLock.objects.take_over_expired(task, owner, now + lease, **where):
            return True
        return _take_over_dead(task, owner, now + lease, where)


def _take_over_dead(task: str, owner: str, until: datetime, where: dict) -> bool:
    """Take a lease whose holder ran on this host and whose process is gone (kill -9):
    the task is free at once, not when the lease lapses. Another host's holder cannot be
    checked from here; its lease lapses."""
    lock = TaskLock.objects.filter(task=task, host=where["host"]).first()
    if lock is None or lock.pid is None or process_alive(lock.pid):
        return False
    return TaskLock.objects.take_over(task, lock.owner, owner, until, **where)


def process_alive(pid: int) -> bool:
    """Whether process `pid` on this host still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _holder(task: str) -> str:
    lock = TaskLock.objects.filter(task=task).first()
    return lock.holder if lock else "a runner that has just finished"


def _release(task: str, owner: str) -> None:
    """Delete the lease. A run that failed on a broken connection (a terminated backend)
    releases on a new one; if even that fails, the lease lapses on its own."""
    try:
        on_a_working_connection(lambda: TaskLock.objects.release(task, owner))
    except DatabaseError:
        log_event(logger, logging.WARNING, LOCK_RELEASE_FAILED, task=task, exc_info=True)


class _Renewal:
    """Extends the lease every third of its length until stopped, on its own connection."""

    def __init__(
        self, task: str, owner: str, lease: timedelta, last: datetime | None = None
    ) -> None:
        self.task, self.owner, self.lease, self.last = task, owner, lease, last
        self.every = max(lease.total_seconds() / 3, 0.1)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-renewal-{task}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stopped.wait(self.every):
                self._renew()
        finally:
            connection.close()  # this thread's own connection

    def _renew(self) -> None:
        try:
            until = timezone.now() + self.lease
            if self.last is not None:
                until = min(until, self.last)
            if TaskLock.objects.renew(self.task, self.owner, until):
                return
            reason = "the lease lapsed and another runner took the task"
        except DatabaseError as exc:
            reason = str(exc).strip()
            connection.close()  # the next renewal reconnects
        log_event(logger, logging.WARNING, LOCK_RENEWAL_FAILED, task=self.task, reason=reason)
