"""`run_task`: the one way any trigger runs a task.

It checks whether an operator paused the task (`pauses.py`) and the task's gate: a
switched-off task says so before anything else, even when its tick was served. A scheduled
trigger then claims its tick (`served_ticks.py`: a loser records its skip and is done), and
the run takes the single-flight lock, is recorded in the run log (a manual run's row is
written here) and calls the task function. A dry run changes nothing, so it is a manual
run whatever its trigger: it never claims a tick. Every
outcome, including a database outage before anything could be recorded, comes back as a
`RunOutcome`; nothing is swallowed and nothing raises.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connection, transaction

from maintenance import registry
from maintenance.checks import configuration_error
from maintenance.models import RunStatus, TaskRun, Trigger
from maintenance.observe.log_events import (
    RUN_RECORD_FAILED,
    TASK_FAILED,
    TASK_FINISHED,
    TASK_SKIPPED,
    TASK_STARTED,
    log_event,
)
from maintenance.observe.observers import notify_finished, notify_started
from maintenance.observe.redaction import redact
from maintenance.observe.status import pause_summary
from maintenance.outcome import RunOutcome, TaskFailed
from maintenance.runs import clock, pauses, retention
from maintenance.runs.deadlines import deadline_of
from maintenance.runs.host import host_name
from maintenance.runs.locks import process_alive, task_lock
from maintenance.runs.reconnect import on_a_working_connection
from maintenance.runs.served_ticks import (
    claim_tick,
    record_served_skip,
    served_reason,
    still_serving,
    tick_label,
)

logger = logging.getLogger("maintenance.runner")

# Triggers that serve the schedule's current tick; the others (a command without
# --trigger, the admin's Run now, HTTP with ?force=1) are manual and always run.
SCHEDULED_TRIGGERS = frozenset({Trigger.SCHEDULER, Trigger.CRON, Trigger.HTTP})

# A claim younger than this may belong to a trigger on its way to the lock: not abandoned.
CLAIM_GRACE = timedelta(seconds=10)

RUNNER_STOPPED = (
    "Runner stopped: the process running it (host {host}, pid {pid}) ended before the run"
    " finished; closed by the next run of the task"
)


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
        tick = _current_tick(task, trigger, force or bool(options.get("dry_run")))
        outcome = _run_registered(task, trigger, started, options, tick)
    except Exception as exc:  # a database outage before the run could be recorded
        outcome = _failure(name, trigger, started, exc, run=None)
        notify_finished(outcome)
    _log(outcome)
    if outcome.status == RunStatus.SUCCEEDED:
        retention.maybe_prune()
    return outcome


def _run_registered(
    task: registry.Task,
    trigger: str,
    started: float,
    options: dict[str, Any],
    tick: datetime | None,
) -> RunOutcome:
    pause = pauses.pause_in_force(task.name)
    if pause is not None:
        reason = f"Skipped: {task.name} is {pauses.describe(pause)}"
        outcome = _record_skip(task.name, trigger, started, reason, tick)
        outcome.pause = pause_summary(pause)
        return outcome
    reason = task.blocked_reason()
    if reason:
        return _record_skip(task.name, trigger, started, reason, tick, gated=True)
    late = _past_deadline(task, tick)
    if late:
        return _record_skip(task.name, trigger, started, late, tick)
    run = None
    if tick is not None:  # claimed first: a redundant trigger costs one more statement
        claim = claim_tick(task.name, trigger, tick, _where())
        if claim.won:
            run = claim.run
        elif still_serving(claim.run, _where()):
            elapsed = _elapsed_ms(started)
            return record_served_skip(task.name, trigger, tick, claim.run, _where(), elapsed)
    try:
        return _take_and_run(task, trigger, started, options, tick, run)
    except Exception as exc:  # e.g. the database lost after the claim: close it, free the tick
        if run is None:
            raise
        outcome = _failure(task.name, trigger, started, exc, run=run)
        notify_finished(outcome)
        return outcome


def _take_and_run(
    task: registry.Task,
    trigger: str,
    started: float,
    options: dict[str, Any],
    tick: datetime | None,
    run: TaskRun | None,
) -> RunOutcome:
    """Past the claim (`run`, when this trigger won its tick): the lock, then the task
    function."""
    with task_lock(task.name, deadline_seconds=task.max_runtime_seconds) as lock:
        if not lock:
            reason = f"Skipped: another runner is already running {task.name} ({lock.holder})"
            return _record_skip(task.name, trigger, started, reason, tick, run=run)
        _close_abandoned_runs(task.name, lock.since, keep=run)
        if run is None and tick is None:  # a manual run serves no tick: nothing to contend for
            run = TaskRun.objects.create(
                task=task.name, trigger=trigger, started_at=clock.now(), **_where()
            )
        elif run is None:  # the tick's earlier claim was a dead runner's, now closed
            claim = claim_tick(task.name, trigger, tick, _where())
            if not claim.won:
                reason = served_reason(tick, claim.run)
                return _record_skip(task.name, trigger, started, reason, tick)
            run = claim.run
        return _execute(task, trigger, started, options, run)


def _execute(
    task: registry.Task, trigger: str, started: float, options: dict[str, Any], run: TaskRun
) -> RunOutcome:
    """Call the task function under its deadline; the run is claimed and the task held."""
    missed = _record_missed(task, run.tick) if run.tick is not None else 0
    log_event(logger, logging.INFO, TASK_STARTED, task=task.name, trigger=trigger, run=run.pk)
    notify_started(task, run)
    try:
        with deadline_of(task.max_runtime_seconds):
            result = dict(task.func(**options))
        if missed:
            result["missedTicks"] = missed
    except Exception as exc:
        outcome = _failure(task.name, trigger, started, exc, run=run)
    else:
        message = task.describe(result)
        outcome = _finish(run, started, RunStatus.SUCCEEDED, result, message=message)
    notify_finished(outcome)
    return outcome


def _current_tick(task: registry.Task, trigger: str, manual: bool) -> datetime | None:
    """The tick a scheduled trigger serves; None for a manual run (`manual`: forced or a
    dry run)."""
    if manual or trigger not in SCHEDULED_TRIGGERS:
        return None
    return task.cron_schedule.latest_tick(clock.now())


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


def _past_deadline(task: registry.Task, tick: datetime | None) -> str:
    """The skip reason when `<TASK>_STARTING_DEADLINE_SECONDS` passed since `tick`."""
    deadline = task.starting_deadline
    if tick is None or deadline is None or clock.now() - tick <= deadline:
        return ""
    seconds = int(deadline.total_seconds())
    return (
        f"Skipped: tick {tick_label(tick)} missed its starting deadline"
        f" ({task.name.upper()}_STARTING_DEADLINE_SECONDS={seconds})"
    )


def _close_abandoned_runs(name: str, held_since: datetime, keep: TaskRun | None) -> None:
    """Close as `failed` the runs of `name` left `running` by a process that died: they
    started before this caller took the task, whose lock proves nobody else runs it.
    Spared: this caller's own claim (`keep`) and another trigger's claim of a tick made
    moments ago on its way to the lock, unless its process on this host is gone."""
    now = clock.now()
    candidates = TaskRun.objects.for_task(name).filter(
        status=RunStatus.RUNNING, started_at__lt=held_since
    )
    if keep is not None:
        candidates = candidates.exclude(pk=keep.pk)
    here = host_name()
    for run in candidates:
        fresh_claim = run.tick is not None and now - run.started_at < CLAIM_GRACE
        if fresh_claim and not (run.host == here and run.pid and not process_alive(run.pid)):
            continue
        run.status = RunStatus.FAILED
        run.finished_at = now
        run.error = RUNNER_STOPPED.format(host=run.host or "?", pid=run.pid or "?")
        run.save(update_fields=["status", "finished_at", "error"])


def _record_skip(
    name: str,
    trigger: str,
    started: float,
    reason: str,
    tick: datetime | None,
    run: TaskRun | None = None,
    gated: bool = False,
) -> RunOutcome:
    """Record a skip: a new row, or this trigger's claim of `tick` (which frees the tick
    for a later trigger of it)."""
    if run is None:
        run = TaskRun.objects.create(
            task=name, trigger=trigger, status=RunStatus.SKIPPED, tick=tick, **_where()
        )
    outcome = _finish(run, started, RunStatus.SKIPPED, {"reason": reason}, message=reason)
    outcome.result = {}
    outcome.gated = gated
    outcome.tick = tick
    return outcome


def _failure(
    name: str, trigger: str, started: float, exc: Exception, run: TaskRun | None
) -> RunOutcome:
    # Redacted once here, so no secret in an exception message reaches the run log, the
    # admin, an HTTP body or a log line.
    text = str(exc) if isinstance(exc, TaskFailed) else f"{type(exc).__name__}: {exc}"
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
            on_a_working_connection(
                lambda: _finish(run, started, RunStatus.FAILED, result, error=error)
            )
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
    run.status = status
    run.finished_at = clock.now()
    run.duration_ms = _elapsed_ms(started)
    run.result = dict(result)
    run.error = error
    run.save(update_fields=["status", "finished_at", "duration_ms", "result", "error"])
    return RunOutcome(
        task=run.task,
        trigger=run.trigger,
        status=status,
        message=message,
        result=result,
        error=error,
        run_id=run.pk,
        finished_at=run.finished_at,
        duration_ms=run.duration_ms,
    )


def _migrate_hint(exc: Exception) -> str:
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
