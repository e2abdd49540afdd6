"""Run-log retention: rows older than MAINTENANCE_RUN_RETENTION_DAYS are pruned by the
task runs themselves, so the log never grows without bound and needs no task of its own.

After a successful run the runner calls `maybe_prune`, which does work at most once per
MAINTENANCE_RUN_PRUNE_INTERVAL_SECONDS in a process. It first counts the finished runs
that started before `FOLD_LAG` ago into `RunTally` and moves the mark past them, in one
transaction (`fold_run_counts`); `/metrics` adds the tallies to the runs after the mark,
so its runs counter never goes backwards and never has to count the whole log. Then it
deletes rows past retention, only ever behind the mark, in batches (`purge_expired`):
one indexed `EXISTS` query unless something is due.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from maintenance.conf import maintenance_settings
from maintenance.models import RunStatus, RunTally, RunTallyMark, TaskRun
from maintenance.observe.log_events import RUNS_PRUNE_FAILED, RUNS_PRUNED, log_event
from maintenance.tables.purge import purge_expired

logger = logging.getLogger("maintenance.retention")

# Runs are counted out of the log once they started this long ago: by then every run has
# finished (a task's lock lease and max_runtime are minutes). A run still unfinished at
# the mark (a crashed runner's row) is never counted, as it never finished.
FOLD_LAG = timedelta(hours=1)
START_OF_TIME = datetime(1970, 1, 1, tzinfo=UTC)

_lock = threading.Lock()
_last_attempt: float | None = None


def retention_days() -> int:
    return int(maintenance_settings.MAINTENANCE_RUN_RETENTION_DAYS)


def cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=retention_days())


def counted_before() -> datetime:
    """Runs that started before this are counted in `RunTally`, not in the log."""
    mark = RunTallyMark.objects.order_by("pk").first()
    return mark.counted_before if mark else START_OF_TIME


def fold_run_counts(now: datetime | None = None) -> int:
    """Add the finished runs that started between the mark and `FOLD_LAG` ago to the
    tallies and move the mark there, in one transaction; returns how many runs. Two
    processes folding at once take turns on the mark row and never count a run twice."""
    new_mark = (now or timezone.now()) - FOLD_LAG
    with transaction.atomic():
        mark, _ = RunTallyMark.objects.select_for_update().get_or_create(
            pk=1, defaults={"counted_before": START_OF_TIME}
        )
        if new_mark <= mark.counted_before:
            return 0
        finished = (
            TaskRun.objects.filter(started_at__gte=mark.counted_before, started_at__lt=new_mark)
            .exclude(status=RunStatus.RUNNING)
            .order_by()
            .values_list("task", "trigger", "status")
            .annotate(runs=Count("pk"))
        )
        total = 0
        for task, trigger, status, runs in finished:
            RunTally.objects.get_or_create(task=task, trigger=trigger, status=status)
            RunTally.objects.filter(task=task, trigger=trigger, status=status).update(
                count=F("count") + runs
            )
            total += runs
        mark.counted_before = new_mark
        mark.save(update_fields=["counted_before"])
    return total


def prune_run_log(now: datetime | None = None) -> int:
    """Count runs out of the log, then delete rows that started before the retention
    cutoff (never past the mark); 0 deleted when retention is off
    (MAINTENANCE_RUN_RETENTION_DAYS <= 0 keeps every row)."""
    fold_run_counts(now)
    if retention_days() <= 0:
        return 0
    before = min(cutoff(now), counted_before())
    if not TaskRun.objects.filter(started_at__lt=before).exists():
        return 0
    deleted = purge_expired(TaskRun, before, field="started_at")
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
