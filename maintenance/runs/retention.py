"""Run-log retention: rows older than MAINTENANCE_RUN_RETENTION_DAYS are pruned by the
task runs themselves, so the log never grows without bound and needs no task of its own.

After a successful run the runner calls `maybe_prune`, which does work at most once per
MAINTENANCE_RUN_PRUNE_INTERVAL_SECONDS in a process. It first counts every finished run
not yet counted into `RunTally` and flags it `counted`, in one transaction per batch
(`fold_run_counts`); `/metrics` adds the tallies to the finished runs not yet counted, so
its runs counter never goes backwards and never has to count the whole log. Then it
deletes rows past retention, only counted ones (and runs that never finished), in batches.

Each row carries its own flag, rather than the log being counted up to a moving time mark,
because rows can land behind any mark: written late with an old `started_at` (a `missed`
row for an old tick) or backdated. A mark would never count them and then delete them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Q, QuerySet

from maintenance.conf import maintenance_settings
from maintenance.logs.log_events import RUNS_PRUNE_FAILED, RUNS_PRUNED, log_event
from maintenance.models import RunStatus, RunTally, TaskRun
from maintenance.runs.clock import database_now

logger = logging.getLogger("maintenance.retention")

FOLD_BATCH = 5000  # runs counted per transaction: short row locks, bounded memory

_lock = threading.Lock()
_last_attempt: float | None = None


def retention_days() -> int:
    return int(maintenance_settings.MAINTENANCE_RUN_RETENTION_DAYS)


def cutoff(now: datetime | None = None) -> datetime:
    """Runs started before this are pruned: on the database's clock, so a host whose clock
    runs fast prunes no more than the others."""
    return (now or database_now()) - timedelta(days=retention_days())


def uncounted_finished_runs() -> QuerySet[TaskRun]:
    """Finished runs (every status but `running`) not yet added to `RunTally`: through the
    partial index on `counted = false`, a small set, as every prune counts them first."""
    return TaskRun.objects.filter(counted=False).exclude(status=RunStatus.RUNNING).order_by()


def fold_run_counts(now: datetime | None = None) -> int:
    """Add every finished run not yet counted to the tallies and flag it counted; returns
    how many runs. `now` is accepted for callers that pass their clock; counting does not
    depend on time. Runs are counted whatever their `started_at`, so a row written late
    or backdated is counted all the same."""
    total = 0
    while True:
        folded, seen = _fold_batch()
        total += folded
        if seen < FOLD_BATCH:
            return total


def _fold_batch() -> tuple[int, int]:
    """One transaction: lock a batch of uncounted runs (skipping rows another pruner holds
    on PostgreSQL), flip their flag only where it is still false, and add exactly the rows
    flipped to the tallies. The guarded UPDATE makes two pruners at once never count a row
    twice, on SQLite too (its first write serialises the rest of the transaction); tallies
    are bumped in a fixed order with F() so concurrent folds never deadlock or lose one."""
    with transaction.atomic():
        batch = uncounted_finished_runs().order_by("pk")
        if connection.features.has_select_for_update_skip_locked:
            batch = batch.select_for_update(skip_locked=True)
        rows = list(batch.values_list("pk", "task", "trigger", "status")[:FOLD_BATCH])
        groups: dict[tuple[str, str, str], list[int]] = {}
        for pk, task, trigger, status in rows:
            groups.setdefault((task, trigger, status), []).append(pk)
        flipped: Counter[tuple[str, str, str]] = Counter()
        for key in sorted(groups):
            flipped[key] = TaskRun.objects.filter(pk__in=groups[key], counted=False).update(
                counted=True
            )
        for (task, trigger, status), runs in sorted(flipped.items()):
            add_to_tally(task, trigger, status, runs)
    return sum(flipped.values()), len(rows)


def add_to_tally(task: str, trigger: str, status: str, runs: int) -> None:
    """Count `runs` more into a tally, with F() so concurrent additions never lose one."""
    if runs:
        RunTally.objects.get_or_create(task=task, trigger=trigger, status=status)
        RunTally.objects.filter(task=task, trigger=trigger, status=status).update(
            count=F("count") + runs
        )


def prunable(now: datetime | None = None) -> QuerySet[TaskRun]:
    """Rows past retention that may go: counted runs, and runs still `running` that long
    after they started (a crashed runner's row, which never finishes and is never counted)."""
    return TaskRun.objects.filter(
        Q(counted=True) | Q(status=RunStatus.RUNNING), started_at__lt=cutoff(now)
    ).order_by()


def prune_run_log(now: datetime | None = None) -> int:
    """Count runs out of the log, then delete prunable rows in batches; 0 deleted when
    retention is off (MAINTENANCE_RUN_RETENTION_DAYS <= 0 keeps every row). Each batch's
    DELETE repeats the condition, so a row is never deleted uncounted even if it changed
    since the batch was picked."""
    fold_run_counts(now)
    if retention_days() <= 0:
        return 0
    expired = prunable(now)
    if not expired.exists():
        return 0
    batch_size = maintenance_settings.MAINTENANCE_DELETE_BATCH_SIZE
    deleted = 0
    while True:
        keys = list(expired.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not keys:
            break
        gone, _ = expired.filter(pk__in=keys).delete()
        deleted += gone
        if len(keys) < batch_size:
            break
    log_event(logger, logging.INFO, RUNS_PRUNED, deleted=deleted, retention_days=retention_days())
    return deleted


def maybe_prune() -> int | None:
    """Prune unless this process did so recently; None when it skipped. Never raises: the
    run it follows has already succeeded."""
    global _last_attempt
    every = maintenance_settings.MAINTENANCE_RUN_PRUNE_INTERVAL_SECONDS
    with _lock:
        now = time.monotonic()
        if _last_attempt is not None and now - _last_attempt < every:
            return None
        _last_attempt = now
    try:
        return prune_run_log()
    except Exception as exc:
        log_event(logger, logging.WARNING, RUNS_PRUNE_FAILED, error=f"{type(exc).__name__}: {exc}")
        return None


def forget_last_prune() -> None:
    """Let the next successful run prune again (for tests and long-lived workers)."""
    global _last_attempt
    with _lock:
        _last_attempt = None
