"""The runner's clocks, each asked for in one place so tests can move them.

An instant that coordinates processes or hosts is the database's: a trigger reads the
database's clock once, in the statement that reads the task's pause
(`pauses.pause_and_clock`), picks its tick from that reading and stamps its run with it;
leases and expiries are compared by the database itself (`now()` in the statement). This
host's clock (`now`) is left for what only this process waits on: the in-process
scheduler's sleeps. Tests move both with the `at` fixture.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.functions import Now
from django.db.models.sql import Query
from django.utils import timezone


def now() -> datetime:
    """This host's current time, aware, in UTC."""
    return timezone.now()


def database(reading: datetime) -> datetime:
    """The instant a trigger goes by: the database's clock `reading` (tests replace it)."""
    return reading


def now_sql(using: str = DEFAULT_DB_ALIAS) -> str:
    """The database's clock in SQL (`STATEMENT_TIMESTAMP()` on PostgreSQL), as Django's
    `Now()` writes it, for the few statements written by hand."""
    sql, _params = Query(None).get_compiler(using=using).compile(Now())
    return sql


def database_now(using: str = DEFAULT_DB_ALIAS) -> datetime:
    """The database's clock, read in a statement of its own: for what needs the instant
    itself (a new row's `expires_at` under an HMAC, a cleanup's one cutoff for all its
    batches) rather than a comparison a statement can make."""
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT {now_sql(using)}", [])
        return moment(cursor.fetchone()[0])


def moment(value: datetime | str | None) -> datetime | None:
    """A timestamp as a raw cursor returns it (SQLite: text in UTC), aware, in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
