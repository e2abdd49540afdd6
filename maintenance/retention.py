"""Run-log retention: rows older than MAINTENANCE_RUN_RETENTION_DAYS are pruned by the
task runs themselves, so the log never grows without bound and needs no task of its own.

After a successful run the runner calls `maybe_prune`, which does work at most once per
MAINTENANCE_RUN_PRUNE_INTERVAL_SECONDS in a process, and then only one indexed `EXISTS`
query unless something is due. The delete goes in batches, each one transaction that
also adds the finished runs it deletes to their `RunTally` counts, so the runs counter
of `/metrics` (tallies plus the log) never goes backwards, whoever reads it mid-prune.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .conf import maintenance_settings
from .events import RUNS_PRUNE_FAILED, RUNS_PRUNED, log_event
from .models import RunStatus, RunTally, TaskRun

logger = logging.getLogger("maintenance.retention")

_lock = threading.Lock()
_last_attempt: float | None = None


def retention_days() -> int:
    return int(maintenance_settings.MAINTENANCE_RUN_RETENTION_DAYS)


def cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=retention_days())


def prune_run_log(now: datetime | None = None) -> int:
    """Delete run-log rows that started before the retention cutoff; 0 when retention is
    off (MAINTENANCE_RUN_RETENTION_DAYS <= 0 keeps every row)."""
    if retention_days() <= 0:
        return 0
    before = cutoff(now)
    if not TaskRun.objects.filter(started_at__lt=before).exists():
        return 0
    batch_size = maintenance_settings.MAINTENANCE_DELETE_BATCH_SIZE
    deleted = 0
    while True:
        batch = _prune_batch(before, batch_size)
        deleted += batch
        if batch < batch_size:
            break
    log_event(logger, logging.INFO, RUNS_PRUNED, deleted=deleted, retention_days=retention_days())
    return deleted


def _prune_batch(before: datetime, batch_size: int) -> int:
    """Delete the oldest `batch_size` rows started before `before` and tally the finished
    ones, in one transaction. The rows are locked first, so two pruners never count the
    same row (the second waits, then finds those rows gone)."""
    with transaction.atomic():
        rows = list(
            TaskRun.objects.filter(started_at__lt=before)
            .order_by("started_at")
            .select_for_update()
            .values_list("pk", "task", "trigger", "status")[:batch_size]
        )
        if not rows:
            return 0
        TaskRun.objects.filter(pk__in=[pk for pk, *_ in rows]).delete()
        finished = Counter(
            (task, trigger, status)
            for _, task, trigger, status in rows
            if status != RunStatus.RUNNING  # a run that never finished was never counted
        )
        for (task, trigger, status), count in finished.items():
            RunTally.objects.get_or_create(task=task, trigger=trigger, status=status)
            RunTally.objects.filter(task=task, trigger=trigger, status=status).update(
                count=F("count") + count
            )
    return len(rows)


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
