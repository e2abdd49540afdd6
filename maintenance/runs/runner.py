"""`run_task`: the one way any trigger runs a task.

A trigger first reads the task's pause together with the database's clock (one statement,
`pauses.pause_and_clock`), the instant it goes by; a paused task, or one its gate shuts
off here, says so before anything else, even when its tick was served. Then it claims the
task through its own run row (`claims.py`): the row holds the task while the run lives
(one `running` run per task, a lease on the row that `leases.py` renews) and, for a
scheduled trigger, serves the current tick (one running or succeeded run per tick). A
loser records its skip naming the holder and is done; the winner calls the task function
under its deadline. A dry run changes nothing, so it is a manual run whatever its trigger:
it never claims a tick. Every outcome, including a database outage before anything could
be recorded, comes back as a `RunOutcome`; nothing is swallowed and nothing raises, except
what ends the process mid-run (SystemExit, KeyboardInterrupt, SIGTERM: `interruptions.py`),
which goes on once the run is closed `failed`. An HTTP run stops within its budget
(`budget.py`) and answers what it did.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import DatabaseError, connection, transaction

from maintenance import registry
from maintenance.checks import configuration_error
from maintenance.conf import shown_seconds
from maintenance.logs.log_events import (
    RUN_RECORD_FAILED,
    TASK_FAILED,
    TASK_FINISHED,
    TASK_SKIPPED,
    TASK_STARTED,
    log_event,
)
from maintenance.logs.redaction import redact
from maintenance.models import RunStatus, TaskRun, Trigger
from maintenance.outcome import RunOutcome, TaskFailed
from maintenance.runs import claims, leases, pauses, retention
from maintenance.runs.budget import budget_note, http_budget, run_within_budget
from maintenance.runs.deadlines import deadline_of
from maintenance.runs.host import host_name
from maintenance.runs.interruptions import interruption, sigterm_raises
from maintenance.runs.reconnect import on_a_working_connection
from maintenance.runs.signals import notify_finished, notify_started

logger = logging.getLogger("maintenance.runner")

# Triggers that serve the schedule's current tick; the others (a command without
# --trigger, the admin's Run now, HTTP with ?force=1) are manual and always run.
SCHEDULED_TRIGGERS = frozenset({Trigger.SCHEDULER, Trigger.CRON, Trigger.HTTP})


def run_task(name: str, trigger: str, *, force: bool = False, **options: Any) -> RunOutcome:
    """Run task `name` once on behalf of `trigger`; see the module docstring.

    A scheduled trigger (scheduler, cron, http) serves the schedule's current tick, the
    latest at or before now: when a run already serves it, the call records a skip naming
    that run. `force` (HTTP's ?force=1) makes a scheduled trigger a manual run.
    """
    started = time.monotonic()
    refused = configuration_error()
    if refused:  # nothing runs, nothing is recorded: the settings must be fixed first
        error = f"Configuration error: {refused}"
        outcome = RunOutcome(name, trigger, RunStatus.FAILED, error=error)
        _log(outcome)
        return outcome
    try:
        task = registry.get(name)
        manual = force or bool(options.get("dry_run")) or trigger not in SCHEDULED_TRIGGERS
        outcome = _run_registered(task, trigger, started, options, manual)
    except Exception as exc:  # a database outage before the run could be recorded
        outcome = _failure(name, trigger, started, exc, run=None)
        notify_finished(outcome)
    _log(outcome)
    if outcome.status == RunStatus.SUCCEEDED:
        retention.maybe_prune()
    return outcome


def _run_registered(
    task: registry.Task, trigger: str, started: float, options: dict[str, Any], manual: bool
) -> RunOutcome:
    """The pause and the gate first (a switched-off task says so whatever its tick), then
    the claim of the task and, for a scheduled trigger, of its tick."""
    reading = pauses.pause_and_clock(task.name)
    now = reading.now
    tick = None if manual else task.cron_schedule.latest_tick(now)
    skip = partial(_record_skip, task.name, trigger, started, now=now, tick=tick)
    if reading.pause is not None:
        outcome = skip(f"Skipped: {task.name} is {reading.pause.describe()}")
        outcome.pause = pauses.summary(reading.pause)
        return outcome
    reason = task.blocked_reason()
    if reason:
        return skip(reason, gated=True)
    late = _past_deadline(task, tick, now)
    if late:
        return skip(late)
    row = TaskRun(
        task=task.name,
        trigger=trigger,
        status=RunStatus.RUNNING,
        started_at=now,
        tick=tick,
        late_ms=None if tick is None else int((now - tick).total_seconds() * 1000),
        **_where(),
    )
    claimed = time.monotonic()
    limit = leases.hold_limit(task.max_runtime_seconds)
    claim = claims.take(row, leases.lease_seconds(limit))
    if not claim.won:
        return skip(claims.skip_reason(task.name, tick, claim.run))
    renewal = leases.Renewal(claim.run.pk, task.name, claimed, limit)
    try:
        return _execute(task, trigger, started, options, claim.run, renewal)
    except Exception as exc:  # e.g. the database lost mid-run: close the run, free the tick
        outcome = _failure(task.name, trigger, started, exc, run=claim.run)
        notify_finished(outcome)
        return outcome


def _execute(
    task: registry.Task,
    trigger: str,
    started: float,
    options: dict[str, Any],
    run: TaskRun,
    renewal: leases.Renewal,
) -> RunOutcome:
    """Call the task function under its deadline (an HTTP run: within its budget, see
    `budget.py`); the run is claimed and holds the task. Its lease is renewed while the
    function runs, and no longer once the run's end is being written; a renewal that finds
    the row closed by another claimant stops the run at its next deadline check."""
    log_event(logger, logging.INFO, TASK_STARTED, task=task.name, trigger=trigger, run=run.pk)
    budget = http_budget(trigger, started)
    try:
        with (
            deadline_of(task.max_runtime_seconds, budget=budget) as deadline,
            renewal.stopping(deadline),
            sigterm_raises(),
        ):  # from here on, whatever ends the run closes its row
            missed = _record_missed(task, run.tick) if run.tick is not None else 0
            notify_started(task, run)
            result = run_within_budget(task.func, options)
        if missed:
            result["missedTicks"] = missed
    except Exception as exc:
        outcome = _failure(task.name, trigger, started, exc, run=run)
    except BaseException as exc:  # the process is ending (interruptions.py): close the run
        # and go on, without the observers: a heartbeat ping (up to its 5 s timeout) would
        # outlast the second gunicorn leaves an aborted worker before SIGKILL.
        _log(_failure(task.name, trigger, started, exc, run=run))
        raise
    else:
        message = task.describe(result) + budget_note(result)
        outcome = _finish(run, started, RunStatus.SUCCEEDED, result, message=message)
    notify_finished(outcome)
    return outcome


MAX_MISSED_ROWS = 100  # the latest ticks get a row; the run's `missedTicks` has the count


def _record_missed(task: registry.Task, tick: datetime) -> int:
    """Write a `missed` row per tick before `tick` that no run served since the last
    accounted one (served or already recorded missed); return how many ticks were missed.
    Past MAX_MISSED_ROWS only the latest get a row and the rest go straight into the
    `missed` tally, so `missed_ticks_total` and `runs_total` count every one. Ticks before
    the task's first recorded run are never missed."""
    runs = TaskRun.objects.for_task(task.name)
    accounted = (
        runs.filter(tick__lt=tick, status__in=[RunStatus.SUCCEEDED, RunStatus.MISSED])
        .order_by("-tick")
        .values_list("tick", flat=True)
        .first()
    )
    if accounted is None:
        accounted = (
            runs.exclude(tick=tick)
            .order_by("started_at")
            .values_list("started_at", flat=True)
            .first()
        )
    if accounted is None:
        return 0
    missed = []
    for earlier in task.cron_schedule.ticks(accounted):
        if earlier >= tick:
            break
        missed.append(earlier)
    rows = [
        TaskRun(task=task.name, trigger=Trigger.SCHEDULER, status=RunStatus.MISSED, tick=t,
                started_at=t, finished_at=t, **_where())
        for t in missed[-MAX_MISSED_ROWS:]
    ]  # fmt: skip
    with transaction.atomic():  # the ticks beyond the rows still count in /metrics
        TaskRun.objects.bulk_create(rows)
        overflow = len(missed) - len(rows)
        retention.add_to_tally(task.name, Trigger.SCHEDULER, RunStatus.MISSED, overflow)
    return len(missed)


def _past_deadline(task: registry.Task, tick: datetime | None, now: datetime) -> str:
    """The skip reason when `<TASK>_STARTING_DEADLINE_SECONDS` passed since `tick`."""
    deadline = task.starting_deadline
    if tick is None or deadline is None or now - tick <= deadline:
        return ""
    seconds = shown_seconds(deadline.total_seconds())
    return (
        f"Skipped: tick {claims.tick_label(tick)} missed its starting deadline"
        f" ({task.name.upper()}_STARTING_DEADLINE_SECONDS={seconds})"
    )


def _record_skip(
    name: str,
    trigger: str,
    started: float,
    reason: str,
    *,
    now: datetime,
    tick: datetime | None,
    gated: bool = False,
) -> RunOutcome:
    """Record a skip: one insert of its finished row (a redundant trigger's last
    statement)."""
    duration_ms = _elapsed_ms(started)
    skip = TaskRun.objects.create(
        task=name,
        trigger=trigger,
        status=RunStatus.SKIPPED,
        started_at=now,
        finished_at=now,
        duration_ms=duration_ms,
        result={"reason": reason},
        tick=tick,
        **_where(),
    )
    outcome = _outcome_of(skip, message=reason)
    outcome.result = {}
    outcome.gated = gated
    outcome.tick = tick
    return outcome


def _failure(
    name: str, trigger: str, started: float, exc: BaseException, run: TaskRun | None
) -> RunOutcome:
    # Redacted once here, so no secret in an exception message reaches the run log, the
    # admin, an HTTP body or a log line.
    text = str(exc) if isinstance(exc, TaskFailed) else f"{type(exc).__name__}: {exc}"
    text = interruption(exc) or text
    error = redact(text.strip().splitlines()[0]) + _migrate_hint(exc)
    result = exc.result if isinstance(exc, TaskFailed) else {}
    outcome = RunOutcome(
        task=name,
        trigger=trigger,
        status=RunStatus.FAILED,
        error=error,
        result=result,
        exception=exc,
        traceback=redact(traceback.format_exc()),
        duration_ms=_elapsed_ms(started),
    )
    if run is not None:
        outcome.run_id = run.pk
        try:
            finished = on_a_working_connection(
                lambda: _finish(run, started, RunStatus.FAILED, result, error=error)
            )
            outcome.error = finished.error  # a run that lost its hold says so instead
        except Exception:  # the database went away mid-run; the error still reaches the caller
            log_event(logger, logging.WARNING, RUN_RECORD_FAILED, task=name, run=run.pk)
    return outcome


def _finish(
    run: TaskRun,
    started: float,
    status: str,
    result: Mapping[str, Any],
    message: str = "",
    error: str = "",
) -> RunOutcome:
    """Write the run's end, only while its row is still its own (`running`): a run that
    lost its hold (another claimant closed its row after its lease ran out) leaves that
    verdict alone and reports itself failed, saying so."""
    duration_ms = _elapsed_ms(started)
    # On the clock its start was read from (the database's), not this host's.
    end = {
        "status": status,
        "duration_ms": duration_ms,
        "finished_at": run.started_at + timedelta(milliseconds=duration_ms),
        "result": dict(result),
        "error": error,
    }
    if not TaskRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(**end):
        lost = leases.lost_hold(run.pk, run.task)
        end.update(status=RunStatus.FAILED, error=lost)
        message = ""
    for name, value in end.items():
        setattr(run, name, value)
    return _outcome_of(run, message=message)


def _outcome_of(run: TaskRun, message: str = "") -> RunOutcome:
    """The outcome a finished run row stands for."""
    return RunOutcome(
        task=run.task,
        trigger=run.trigger,
        status=run.status,
        message=message,
        result=run.result,
        error=run.error,
        run_id=run.pk,
        finished_at=run.finished_at,
        duration_ms=run.duration_ms,
    )


def _migrate_hint(exc: BaseException) -> str:
    """A hint when the database lacks the run log's table (a fresh database)."""
    if not isinstance(exc, DatabaseError):
        return ""
    try:
        tables = connection.introspection.table_names()
    except Exception:
        return ""
    if TaskRun._meta.db_table in tables:
        return ""
    return " (the database has no maintenance tables: run `python manage.py migrate`)"


def _where() -> dict[str, Any]:
    return {"host": host_name(), "pid": os.getpid()}


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _log(outcome: RunOutcome) -> None:
    """One event per outcome; see README "Log events"."""
    common = {"task": outcome.task, "trigger": outcome.trigger, "run": outcome.run_id}
    if outcome.failed:
        counts = dict(outcome.result)
        log_event(logger, logging.ERROR, TASK_FAILED, **common, error=outcome.error, counts=counts)
    elif outcome.skipped:
        log_event(logger, logging.INFO, TASK_SKIPPED, **common, reason=outcome.message)
    else:
        log_event(
            logger,
            logging.INFO,
            TASK_FINISHED,
            **common,
            duration_ms=outcome.duration_ms,
            counts=dict(outcome.result),
        )
