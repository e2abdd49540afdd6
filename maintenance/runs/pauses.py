"""Pausing a task on every host at once, and resuming it: the operator's switch.

A pause is one row per task in `maintenance_task_pauses`, so every trigger on every host
sees it on its next attempt, with no redeploy. `run_task` reads it first, together with
the database's clock (`pause_and_clock`, one statement): while a task is paused, each
trigger records a `skipped` run whose reason names the pause and tells no observer. A
pause with an end (`--for 2h`) lapses by itself at that time, on the database's clock.

The commands (`maintenance_pause`, `maintenance_resume`) and the admin's buttons call
`pause()` and `resume()`; the runner reads `pause_and_clock()`, status, metrics and
`check --deploy` read `pauses_in_force()`, one query each.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models.functions import Now

from maintenance import registry
from maintenance.isotime import iso_utc
from maintenance.logs.control_chars import strip_controls
from maintenance.logs.log_events import TASK_PAUSED, TASK_RESUMED, log_event
from maintenance.models import RunStatus, TaskPause, TaskRun
from maintenance.runs import clock
from maintenance.runs.leases import gone_here

logger = logging.getLogger("maintenance.pauses")

MAX_REASON_LENGTH = 500
DURATION = re.compile(r"([1-9][0-9]{0,5})([mhd])")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}
DURATION_EXAMPLES = "30m, 2h or 1d"
# The admin's choice of durations (value as `--for` takes it, label); "" is open-ended.
DURATION_CHOICES = [
    ("", "until resumed"),
    ("30m", "for 30 min"),
    ("1h", "for 1 h"),
    ("2h", "for 2 h"),
    ("4h", "for 4 h"),
    ("1d", "for 1 day"),
]


class BadPause(ValueError):
    """A pause the operator asked for that cannot be recorded; the message says why."""


def parse_duration(text: str) -> timedelta:
    """`30m`, `2h`, `1d` as a timedelta; BadPause for anything else."""
    match = DURATION.fullmatch(text.strip().lower())
    if not match:
        raise BadPause(f"the duration must be like {DURATION_EXAMPLES}, got {text!r}")
    amount, unit = match.groups()
    return timedelta(**{UNITS[unit]: int(amount)})


def clean_reason(reason: str) -> str:
    """The reason as stored: control characters stripped (they would act on the terminal
    of whoever reads status), whitespace collapsed; BadPause when nothing is left."""
    reason = strip_controls(reason)
    if not reason:
        raise BadPause("a reason is required: say why the task is paused")
    if len(reason) > MAX_REASON_LENGTH:
        raise BadPause(f"the reason is {len(reason)} characters; at most {MAX_REASON_LENGTH}")
    return reason


def cli_user() -> str:
    """`cli:<os user>`, how a pause from the command line names who paused."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a uid with no passwd entry (some containers)
        user = f"uid{os.getuid()}"
    return f"cli:{user}"


@dataclass
class Paused:
    """What `pause()` did: the pause now in force, the one it replaced (if any), and the
    run in progress it lets finish (if any)."""

    pause: TaskPause
    replaced: TaskPause | None
    run: TaskRun | None

    @property
    def in_progress(self) -> bool:
        return self.run is not None


def pause(name: str, reason: str, by: str, duration: timedelta | None = None) -> Paused:
    """Pause task `name` on every host until resumed, or for `duration`.

    UnknownTask for a name not declared, BadPause for an empty reason; either changes
    nothing. Pausing a paused task replaces its pause (reason, who, since, until)."""
    registry.get(name)
    reason = clean_reason(reason)
    by = strip_controls(by)[: TaskPause._meta.get_field("paused_by").max_length]
    now = clock.database_now()  # every host compares its end with the database's clock
    until = now + duration if duration else None
    with transaction.atomic():
        previous = TaskPause.objects.select_for_update().filter(task=name).first()
        row, _ = TaskPause.objects.update_or_create(
            task=name,
            defaults={"reason": reason, "paused_by": by, "paused_at": now, "paused_until": until},
        )
    log_event(
        logger, logging.WARNING, TASK_PAUSED, task=name, by=by, until=iso_utc(until), reason=reason
    )
    replaced = previous if previous is not None and previous.in_force(now) else None
    return Paused(pause=row, replaced=replaced, run=run_in_progress(name))


def resume(name: str, by: str) -> TaskPause | None:
    """Lift task `name`'s pause on every host; return the pause that was in force, or None
    when there was none (resuming is idempotent). UnknownTask for an undeclared name."""
    registry.get(name)
    with transaction.atomic():
        row = TaskPause.objects.select_for_update().filter(task=name).first()
        if row is not None:
            row.delete()
    if row is None or not row.in_force():
        return None
    log_event(logger, logging.INFO, TASK_RESUMED, task=name, by=by, paused_by=row.paused_by)
    return row


@dataclass(frozen=True)
class Reading:
    """What a trigger reads first: the pause holding its task (or None) and the
    database's clock, the instant the trigger goes by."""

    pause: TaskPause | None
    now: datetime


PAUSE_COLUMNS = ("reason", "paused_by", "paused_at", "paused_until")


def pause_and_clock(name: str) -> Reading:
    """The pause in force for task `name` and the database's clock: one statement, which
    answers a row whether or not the task is paused."""
    now = clock.now_sql()
    quote = connection.ops.quote_name
    columns = ", ".join(f"p.{quote(column)}" for column in PAUSE_COLUMNS)
    sql = (
        f"SELECT {now}, {columns} FROM (SELECT 1) AS one"  # noqa: S608 (quoted identifiers; values bound)
        f" LEFT JOIN {quote(TaskPause._meta.db_table)} AS p ON p.task = %s"
        f" AND (p.paused_until IS NULL OR p.paused_until > {now})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [name])
        db_now, reason, paused_by, paused_at, paused_until = cursor.fetchone()
    pause = None
    if paused_by is not None:
        pause = TaskPause(task=name, reason=reason, paused_by=paused_by)
        pause.paused_at, pause.paused_until = clock.moment(paused_at), clock.moment(paused_until)
        pause._state.adding, pause._state.db = False, connection.alias
    return Reading(pause=pause, now=clock.database(clock.moment(db_now)))


def pauses_in_force(now: datetime | None = None) -> dict[str, TaskPause]:
    """Every pause that holds now, by task name: one query."""
    return {row.task: row for row in TaskPause.objects.in_force(now)}


def paused_note(row: TaskPause) -> str:
    """What pausing tells the operator (the command prints it, the admin shows it)."""
    return (
        f"Paused {row.task} on every host: {row.describe()}. Every trigger now records a "
        "skipped run instead."
    )


def summary(pause: TaskPause | None) -> dict[str, Any]:
    """The pause fields of a task's status (and of a paused run's body)."""
    return {
        "paused": pause is not None,
        "pausedReason": pause.reason if pause else None,
        "pausedBy": pause.paused_by if pause else None,
        "pausedAt": iso_utc(pause.paused_at) if pause else None,
        "pausedUntil": iso_utc(pause.paused_until) if pause else None,
    }


def in_progress_note(name: str, run: TaskRun) -> str:
    """What to tell the operator about the run a pause lets finish."""
    return (
        f"Run {run.pk} of {name} is in progress (started {iso_utc(run.started_at, 'seconds')} "
        f"on {run.host}, pid {run.pid}); pausing does not interrupt it, it will finish."
    )


def run_in_progress(name: str) -> TaskRun | None:
    """The run holding task `name` now: its `running` row whose lease has not run out (on
    the database's clock) and whose process, when on this host, is alive."""
    run = TaskRun.objects.filter(task=name, status=RunStatus.RUNNING, lease_expires_at__gte=Now())
    run = run.first()
    return None if run is None or gone_here(run.host, run.pid) else run
