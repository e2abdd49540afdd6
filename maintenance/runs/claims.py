"""A trigger's claim: its own `running` row, which holds the task and serves its tick.

The run log is the one coordination record. Two partial unique indexes on it settle every
race in the database, whatever the triggers, processes and hosts: `task_runs_one_running`
(one `running` run per task: single flight) and `task_runs_one_per_tick` (one running or
succeeded run per task and tick). A trigger inserts its row, with a lease on the
database's clock (`leases.py`), only when no run holds the task and no success served its
tick; otherwise the one statement answers the row in its way, the holder. On PostgreSQL
that is a single `WITH holder AS (SELECT ...), claimed AS (INSERT ... WHERE NOT EXISTS
holder ON CONFLICT (task) WHERE status = 'running' DO UPDATE ... RETURNING ...)`: the
holder read answers what the statement's snapshot sees, and the no-op `DO UPDATE` answers
a running row committed after the statement began (a burst of triggers at one tick). Only
a success committed in that instant makes the insert fail on the tick's index; the claim
is then asked again. A loser records its skip naming the holder, one more insert: with
the pause read, three statements in all, no lock, no transaction, nothing held on a pooled
connection between statements.

A holder whose lease ran out, or whose process on this host is gone, was left by a runner
that died: the claimant closes it `failed` with one conditional `UPDATE` (only while it is
still running and still lapsed or gone) and claims again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, Case, ExpressionWrapper, Q, Value, When
from django.db.models.functions import Now

from maintenance.isotime import iso_utc
from maintenance.models import LEASE_RAN_OUT, RunStatus, TaskRun
from maintenance.runs import clock
from maintenance.runs.leases import gone_here

TICK_SERVED = "Skipped: tick {tick} already served by run {run} ({trigger})"
TICK_BEING_SERVED = "Skipped: tick {tick} is being served by run {run} ({trigger})"
HELD = "Skipped: another runner is already running {task} (host {host}, pid {pid}, since {since})"
RUNNER_STOPPED = (
    "Runner stopped: the process running it (host {host}, pid {pid}) ended before the run"
    " finished; closed by the next run of the task"
)
ATTEMPTS = 5  # claims in a row, each after a holder vanished or was closed as stopped
RETURNED = ("id", "trigger", "status", "host", "pid", "tick", "started_at")


@dataclass(frozen=True)
class Claim:
    """`run` is this trigger's new `running` row when `won`, else the holder: the run
    holding the task, or the success that served the tick. `lapsed`: the holder's lease
    ran out (on the database's clock)."""

    run: TaskRun
    won: bool
    lapsed: bool = False


def tick_label(tick: datetime) -> str:
    return tick.strftime("%H:%M UTC")


def skip_reason(name: str, tick: datetime | None, holder: TaskRun) -> str:
    """Why a trigger that lost its claim to `holder` skips."""
    if holder.status == RunStatus.SUCCEEDED:
        template = TICK_SERVED
    elif tick is not None and holder.tick == tick:
        template = TICK_BEING_SERVED
    else:
        since = iso_utc(holder.started_at, timespec="seconds")
        return HELD.format(task=name, host=holder.host or "?", pid=holder.pid or "?", since=since)
    return template.format(tick=tick_label(tick), run=holder.pk, trigger=holder.trigger)


def take(row: TaskRun, lease: float) -> Claim:
    """Claim `row` (unsaved, `running`) with a lease of `lease` seconds; a holder that is
    known stopped is closed first, so the claim goes to this trigger."""
    for _ in range(ATTEMPTS):
        claim = _claim(row, lease)
        if claim is None:  # the holder finished between the read and the insert: again
            continue
        if claim.won or claim.run.status == RunStatus.SUCCEEDED:
            return claim
        if not close_stopped(claim.run, claim.lapsed, row.started_at):
            return claim
    return claim if claim is not None else Claim(row, won=False)


def close_stopped(holder: TaskRun, lapsed: bool, now: datetime) -> bool:
    """Close `holder` as `failed` when its runner is gone (lease run out, or its pid gone
    on this host): one conditional UPDATE. True when the holder no longer holds."""
    gone = gone_here(holder.host, holder.pid)
    if not (lapsed or gone):
        return False
    still = LEASE_RAN_OUT
    if gone:
        still |= Q(host=holder.host, pid=holder.pid)
    error = RUNNER_STOPPED.format(host=holder.host or "?", pid=holder.pid or "?")
    TaskRun.objects.filter(still, pk=holder.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.FAILED, finished_at=now, error=error
    )
    return True  # closed here, or by another claimant in between: either way, claim again


def _claim(row: TaskRun, lease: float) -> Claim | None:
    if connection.vendor == "postgresql":
        return _claim_in_one_statement(row, lease)
    try:
        with transaction.atomic():
            row.lease_expires_at = Now() + timedelta(seconds=lease)
            row.save(force_insert=True)
        return Claim(row, won=True)
    except IntegrityError:
        row.pk, row._state.adding = None, True
    holder = _holders(row.task, row.tick).first()
    return None if holder is None else Claim(holder, won=False, lapsed=holder.lapsed)


def _holders(name: str, tick: datetime | None) -> Any:
    """The run holding task `name`, then the success serving `tick`; each with `lapsed`."""
    holding = Q(status=RunStatus.RUNNING)
    if tick is not None:
        holding |= Q(status=RunStatus.SUCCEEDED, tick=tick)
    served_first = Case(When(status=RunStatus.SUCCEEDED, then=Value(0)), default=Value(1))
    return (
        TaskRun.objects.for_task(name)
        .filter(holding)
        .annotate(lapsed=ExpressionWrapper(LEASE_RAN_OUT, output_field=BooleanField()))
        .order_by(served_first)
    )


def _claim_in_one_statement(row: TaskRun, lease: float) -> Claim | None:
    fields = _fields()
    values = [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
    try:
        with connection.cursor() as cursor:
            cursor.execute(_claim_sql(), [row.task, row.tick, *values, lease])
            answer = cursor.fetchone()
    except IntegrityError:  # the tick's success committed while the statement ran: again
        return None
    *returned, lapsed, won = answer
    run = row if won else TaskRun(task=row.task)
    for name, value in zip(RETURNED, returned, strict=True):
        setattr(run, name, clock.moment(value) if name in ("tick", "started_at") else value)
    run._state.adding, run._state.db = False, connection.alias
    return Claim(run, won=won, lapsed=bool(lapsed))


@cache
def _fields() -> list:
    skipped = ("id", "lease_expires_at")
    return [f for f in TaskRun._meta.concrete_fields if f.name not in skipped]


@cache
def _claim_sql() -> str:
    """The claim on PostgreSQL: the holder read and the insert in one statement."""
    quote = connection.ops.quote_name
    table = quote(TaskRun._meta.db_table)
    now = clock.now_sql()
    returned = ", ".join(quote(name) for name in RETURNED)
    columns = ", ".join(quote(f.column) for f in _fields())
    values = ", ".join(f"CAST(%s AS {f.cast_db_type(connection)})" for f in _fields())
    return (
        f"WITH holder AS (SELECT {returned},"  # noqa: S608 (quoted identifiers; values bound)
        f" COALESCE(lease_expires_at < {now}, true) AS lapsed, false AS won FROM {table}"
        " WHERE task = %s AND (status = 'running' OR (status = 'succeeded' AND tick = %s))"
        " ORDER BY status = 'succeeded' DESC LIMIT 1),"
        f" claimed AS (INSERT INTO {table} ({columns}, lease_expires_at)"
        f" SELECT {values}, {now} + %s * INTERVAL '1 second'"
        " WHERE NOT EXISTS (SELECT 1 FROM holder)"
        " ON CONFLICT (task) WHERE status = 'running' DO UPDATE SET task = EXCLUDED.task"
        f" RETURNING {returned}, (xmax <> 0 AND COALESCE(lease_expires_at < {now}, true)),"
        " (xmax = 0))"
        " SELECT * FROM claimed UNION ALL SELECT * FROM holder"
    )
