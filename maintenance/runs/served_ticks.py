"""A scheduled trigger claims its tick before anything else, in one statement.

Every process, every cron entry and every HTTP poller may fire at one tick; exactly one
wins it and all the others must cost the database next to nothing, however close together
they arrive. So the first thing a scheduled trigger does (after the pause read: a paused
task says so first) is to insert its `running` row for the tick, and the partial unique
constraint `task_runs_one_per_tick` decides: the row is either ours, or the one already
serving the tick comes back instead. On PostgreSQL that is a single
`INSERT ... ON CONFLICT ... DO UPDATE ... RETURNING` (the no-op update is what makes the
serving row come back even when it was committed after the statement began); a loser then
records its skip naming that run, one more insert: three statements in all, no lock, no
transaction and no savepoint, so nothing differs through PgBouncer in transaction mode.
The winner goes on to the gate and the task's lock; a row left `running` by a runner that
is gone does not serve, and the caller closes it under the lock before claiming again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.db import IntegrityError, connection, transaction

from maintenance.models import RunStatus, TaskRun
from maintenance.outcome import RunOutcome
from maintenance.runs import clock
from maintenance.runs.locks import process_alive

TICK_SERVED = "Skipped: tick {tick} already served by run {run} ({trigger})"
TICK_BEING_SERVED = "Skipped: tick {tick} is being served by run {run} ({trigger})"
SERVING = [RunStatus.RUNNING, RunStatus.SUCCEEDED]


@dataclass(frozen=True)
class TickClaim:
    """`run` is this trigger's new `running` row when `won`, else the row serving the tick."""

    run: TaskRun
    won: bool


def tick_label(tick: datetime) -> str:
    return tick.strftime("%H:%M UTC")


def served_reason(tick: datetime, serving: TaskRun) -> str:
    template = TICK_BEING_SERVED if serving.status == RunStatus.RUNNING else TICK_SERVED
    return template.format(tick=tick_label(tick), run=serving.pk, trigger=serving.trigger)


def claim_tick(name: str, trigger: str, tick: datetime, where: dict[str, Any]) -> TickClaim:
    """Insert this trigger's `running` row for `tick`, or return the row serving it."""
    started_at = clock.now()
    row = TaskRun(
        task=name,
        trigger=trigger,
        status=RunStatus.RUNNING,
        started_at=started_at,
        tick=tick,
        late_ms=int((started_at - tick).total_seconds() * 1000),
        **where,
    )
    if connection.vendor == "postgresql":
        return _upsert(row)
    try:
        with transaction.atomic():
            row.save(force_insert=True)
        return TickClaim(row, won=True)
    except IntegrityError:
        serving = TaskRun.objects.for_task(name).filter(tick=tick, status__in=SERVING).first()
        if serving is None:  # it failed in between: the tick is free again
            return claim_tick(name, trigger, tick, where)
        return TickClaim(serving, won=False)


def _upsert(row: TaskRun) -> TickClaim:
    values = [f.get_db_prep_save(getattr(row, f.attname), connection) for f in _fields()]
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(), values)
        pk, trigger, status, host, pid, inserted = cursor.fetchone()
    if inserted:
        row.pk = pk
        row._state.adding, row._state.db = False, connection.alias
        return TickClaim(row, won=True)
    serving = TaskRun(pk=pk, task=row.task, trigger=trigger, status=status, host=host, pid=pid)
    serving._state.adding, serving._state.db = False, connection.alias
    return TickClaim(serving, won=False)


@cache
def _fields() -> list:
    return [f for f in TaskRun._meta.concrete_fields if not f.primary_key]


@cache
def _upsert_sql() -> str:
    """The claim: the arbiter is `task_runs_one_per_tick`, whose predicate it repeats."""
    table = connection.ops.quote_name(TaskRun._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in _fields())
    placeholders = ", ".join(["%s"] * len(_fields()))
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608 (quoted identifiers; values bound)
        " ON CONFLICT (task, tick) WHERE status IN ('running', 'succeeded') AND tick IS NOT NULL"
        " DO UPDATE SET task = EXCLUDED.task"
        " RETURNING id, trigger, status, host, pid, (xmax = 0)"
    )


def still_serving(serving: TaskRun, where: dict[str, Any]) -> bool:
    """A success serves for good; a `running` run while its process on this host lives.
    One running on another host may have died with its lease still held: the caller's
    lock decides."""
    if serving.status == RunStatus.SUCCEEDED:
        return True
    on_this_host = serving.host == where["host"] and serving.pid is not None
    return on_this_host and process_alive(serving.pid)


def record_served_skip(
    name: str, trigger: str, tick: datetime, serving: TaskRun, where: dict, duration_ms: int
) -> RunOutcome:
    """The loser's skip naming the run that serves `tick`: one insert."""
    reason = served_reason(tick, serving)
    now = clock.now()
    skip = TaskRun.objects.create(
        task=name,
        trigger=trigger,
        status=RunStatus.SKIPPED,
        started_at=now,
        finished_at=now,
        duration_ms=duration_ms,
        result={"reason": reason},
        tick=tick,
        **where,
    )
    outcome = RunOutcome(
        task=name,
        trigger=trigger,
        status=RunStatus.SKIPPED,
        message=reason,
        run_id=skip.pk,
        finished_at=now,
        duration_ms=duration_ms,
    )
    outcome.tick = tick
    return outcome
