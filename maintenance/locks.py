"""Single-flight locks: one run of a task at a time, across threads, processes and hosts.

On PostgreSQL a session-level advisory lock: the server releases it the moment the holding
connection ends, so a killed runner never leaves a stale lock. Elsewhere (SQLite) a lease
row in `maintenance_task_locks`: a killed runner's lease lapses after
MAINTENANCE_LOCK_LEASE_SECONDS.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from .conf import maintenance_settings
from .events import LOCK_RELEASE_FAILED, log_event
from .models import TaskLock

logger = logging.getLogger(__name__)


def advisory_key(task: str) -> int:
    """A stable signed 64-bit key per task name, the same on every host."""
    digest = hashlib.blake2b(f"pluggedin.maintenance:{task}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def task_lock(task: str) -> Iterator[bool]:
    """Yield True when this caller holds the task's lock, False when another runner does."""
    if connection.vendor == "postgresql":
        with _advisory_lock(task) as held:
            yield held
    else:
        with _lease_lock(task) as held:
            yield held


@contextmanager
def _advisory_lock(task: str) -> Iterator[bool]:
    key = advisory_key(task)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            _release_advisory(task, key)


def _release_advisory(task: str, key: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    except DatabaseError:
        # The connection is gone, and the server dropped the lock with it.
        log_event(logger, logging.WARNING, LOCK_RELEASE_FAILED, task=task, exc_info=True)


@contextmanager
def _lease_lock(task: str) -> Iterator[bool]:
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    held = _take_lease(task, owner)
    try:
        yield held
    finally:
        if held:
            TaskLock.objects.release(task, owner)


def _take_lease(task: str, owner: str) -> bool:
    until = timezone.now() + timedelta(seconds=maintenance_settings.MAINTENANCE_LOCK_LEASE_SECONDS)
    try:
        with transaction.atomic():
            TaskLock.objects.create(task=task, owner=owner, expires_at=until)
        return True
    except IntegrityError:
        return TaskLock.objects.take_over_expired(task, owner, until)
