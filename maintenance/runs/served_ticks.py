"""The early answer to a redundant scheduled trigger: its tick is already served.

Every process, every cron entry and every HTTP poller may fire at one tick; all but one
find it served. Those must cost the database next to nothing: one read finds the run
serving the tick and one insert records the skip naming it, with no pause read, no lock,
no transaction and no savepoint (so nothing differs through PgBouncer in transaction
mode); a run still `running` on another host costs one more read, of its lease. When no
live run serves it, the caller takes the normal path, where the unique constraint
`task_runs_one_per_tick` still settles any race and a dead runner's row gets closed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from maintenance.models import RunStatus, TaskLock, TaskRun
from maintenance.outcome import RunOutcome
from maintenance.runs import clock
from maintenance.runs.locks import process_alive

TICK_SERVED = "Skipped: tick {tick} already served by run {run} ({trigger})"
TICK_BEING_SERVED = "Skipped: tick {tick} is being served by run {run} ({trigger})"


def tick_label(tick: datetime) -> str:
    return tick.strftime("%H:%M UTC")


def served_reason(tick: datetime, serving: TaskRun) -> str:
    template = TICK_BEING_SERVED if serving.status == RunStatus.RUNNING else TICK_SERVED
    return template.format(tick=tick_label(tick), run=serving.pk, trigger=serving.trigger)


def skip_if_served(
    name: str, trigger: str, tick: datetime, where: dict[str, Any], duration_ms: int
) -> RunOutcome | None:
    """Record a skip naming the run that serves `tick` and return its outcome, in at
    most three statements; None when no run serves it, or when the run serving it may
    have been left `running` by a runner that is gone (the normal path closes it)."""
    serving = (
        TaskRun.objects.for_task(name)
        .filter(tick=tick, status__in=[RunStatus.RUNNING, RunStatus.SUCCEEDED])
        .only("pk", "task", "status", "trigger", "host", "pid")
        .first()
    )
    if serving is None or not _still_serving(serving, where):
        return None
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


def _still_serving(serving: TaskRun, where: dict[str, Any]) -> bool:
    """A success serves for good; a `running` run while its process lives (this host) or
    while the task's lease is held by a live holder (checked on this host, else trusted
    until it lapses)."""
    if serving.status == RunStatus.SUCCEEDED:
        return True
    if serving.host == where["host"] and serving.pid is not None:
        return process_alive(serving.pid)
    lock = TaskLock.objects.filter(task=serving.task).only("host", "pid", "expires_at").first()
    if lock is None or lock.expires_at <= timezone.now():
        return False
    return lock.host != where["host"] or lock.pid is None or process_alive(lock.pid)
