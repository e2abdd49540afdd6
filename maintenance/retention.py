"""Run-log retention: rows older than MAINTENANCE_RUN_RETENTION_DAYS are pruned by the
task runs themselves, so the log never grows without bound and needs no task of its own.

After a successful run the runner calls `maybe_prune`, which does work at most once per
MAINTENANCE_RUN_PRUNE_INTERVAL_SECONDS in a process, and then only one indexed `EXISTS`
query unless something is due; the delete itself goes in batches (`purge_expired`).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from django.utils import timezone

from .conf import maintenance_settings
from .events import RUNS_PRUNE_FAILED, RUNS_PRUNED, log_event
from .models import TaskRun
from .purge import purge_expired

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
