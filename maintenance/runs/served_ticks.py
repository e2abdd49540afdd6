"""The early answer to a redundant scheduled trigger: its tick is already served.

Every process, every cron entry and every HTTP poller may fire at one tick; all but one
find it served. Those must cost the database next to nothing: after the pause read (a
paused task says so first), one read finds the run serving the tick and one insert
records the skip naming it, with no lock, no transaction and no savepoint (so nothing
differs through PgBouncer in transaction mode). When no live run serves it (or one runs
on another host, whose liveness only its lease tells), the caller takes the normal path,
where the unique constraint `task_runs_one_per_tick` still settles any race and a dead
runner's row gets closed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from maintenance.models import RunStatus, TaskRun
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
    """Record a skip naming the run that serves `tick` and return its outcome, in two
    statements; None when no run serves it, or when the run serving it may have been
    left `running` by a runner that is gone (the normal path decides)."""
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
    """A success serves for good; a `running` run while its process on this host lives.
    One running on another host may have died with its lease still held: the normal path
    (the lock) decides."""
    if serving.status == RunStatus.SUCCEEDED:
        return True
    on_this_host = serving.host == where["host"] and serving.pid is not None
    return on_this_host and process_alive(serving.pid)
