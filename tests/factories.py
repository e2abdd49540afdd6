"""Rows and tasks for the tests, made one way: tasks, PKCE states, users, due emails."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone

from emails.models import EmailType, ScheduledEmail
from maintenance.management.base import TaskCommand
from maintenance.models import RunStatus, TaskRun
from maintenance.registry import Task
from oauth.models import PKCEState

SERVER = uuid.UUID(int=7)


def fake_task(
    name: str = "demo",
    func: Callable[..., Any] | None = None,
    **overrides: Any,
) -> Task:
    """A task for tests: `func` (default: one counted thing) every five minutes."""
    fields = {
        "name": name,
        "func": func if func is not None else (lambda **options: {"count": 1}),
        "description": f"Fake task {name}.",
        "message": "Did {count} things",
        "cron": "*/5 * * * *",
    }
    return Task(**{**fields, **overrides})


class Calls(list):
    """The options of every call a `counting_task` got, in order."""

    def __call__(self, **options: Any) -> dict[str, int]:
        self.append(options)
        return {"count": len(self)}


def held_by(
    task: str, host: str, pid: int | None, lease: timedelta | None, **fields: Any
) -> TaskRun:
    """A `running` run holding `task` for another runner (`host`, `pid`), its lease ending
    `lease` from now on the database's clock (None: no lease at all)."""
    run = TaskRun.objects.create(
        task=task, trigger=fields.pop("trigger", "cron"), status=RunStatus.RUNNING, host=host,
        pid=pid, **fields,
    )  # fmt: skip
    if lease is not None:
        TaskRun.objects.filter(pk=run.pk).update(lease_expires_at=Now() + lease)
    run.refresh_from_db()
    return run


def counting_task(name: str = "demo", **overrides: Any) -> tuple[Task, Calls]:
    """A fake task that records each call's options (so a test sees whether it ran)."""
    calls = Calls()
    return fake_task(name, calls, **overrides), calls


def task_command(task: Task) -> TaskCommand:
    """The management command a declaration like `task` gets (`call_command` takes it as
    is): a fake task's command without a module under `management/commands/`."""
    return type("Command", (TaskCommand,), {"task": task})()


def state_row(state: str, expires_at: datetime) -> PKCEState:
    """An unsaved PKCE state row (for bulk inserts)."""
    return PKCEState(
        state=state,
        server_uuid=SERVER,
        code_verifier="v" * 43,
        redirect_uri="https://client.test/cb",
        integrity_hash="0" * 64,
        expires_at=expires_at,
    )


def make_state(name: str, *, expired: bool) -> PKCEState:
    """A saved PKCE state, five minutes past or before its expiry."""
    delta = timedelta(minutes=-5 if expired else 5)
    row = state_row(name * 43, timezone.now() + delta)
    row.save(force_insert=True)
    return row


def make_slow_backlog(count: int) -> None:
    """`count` expired PKCE states, each with an expiry of its own in insertion order and
    the table analysed: at MAINTENANCE_DELETE_BATCH_SIZE=1 a cleanup deletes one row per
    batch (PostgreSQL slices the index), a run long enough to be stopped mid-way."""
    expired = timezone.now() - timedelta(hours=1)
    rows = [state_row(f"{n:043d}", expired + timedelta(milliseconds=n)) for n in range(count)]
    PKCEState.objects.bulk_create(rows, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE oauth_pkce_states")


def make_users(count: int, prefix: str = "user") -> list:
    User = get_user_model()
    User.objects.bulk_create(
        User(username=f"{prefix}{i}", email=f"{prefix}{i}@example.test", first_name=f"Ann{i}")
        for i in range(count)
    )
    return list(User.objects.filter(username__startswith=prefix).order_by("pk"))


def make_due(
    count: int, *, prefix: str = "user", at: datetime | None = None
) -> list[ScheduledEmail]:
    """`count` users, each with one welcome email due a minute before `at` (default now)."""
    due = (at or timezone.now()) - timedelta(minutes=1)
    users = make_users(count, prefix)
    ScheduledEmail.objects.bulk_create(
        ScheduledEmail(user=user, email_type=EmailType.WELCOME, scheduled_for=due) for user in users
    )
    return list(ScheduledEmail.objects.filter(user__in=users))


def statuses() -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in ScheduledEmail.objects.values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts
