"""A task's latest ticks, classified from the run log: what the tick strip and status show.

A tick's runs are many when a fleet fires at it (one run takes it, every other trigger
records a skip), so the run rows of the window are never all read: one query fetches the
rows that decide a tick (succeeded, failed, running, missed; a few per tick), and only for
the ticks those leave open a second query asks which had skips, one row per tick. They go
down `task_runs_deciding_idx` and `task_runs_task_tick_idx`, so the cost grows with the
number of ticks shown, not with the runs each tick had.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Min

from maintenance.conf import task_seconds
from maintenance.models import RunStatus, TaskRun

STRIP_TICKS = 48
LATE_FRACTION = 10  # served more than a tenth of the gap after the tick is late
DECIDING = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.RUNNING, RunStatus.MISSED]


@dataclass(frozen=True)
class Tick:
    at: datetime
    status: str  # served, late, failed, missed, skipped, pending, or "" (before the first run)
    run: TaskRun | None
    late_ms: int | None
    # Still servable: its starting deadline has not passed, so a later trigger may serve it.
    open: bool = False


def starting_deadline(task_name: str, tick: datetime, gap: timedelta) -> datetime:
    """When a tick stops being servable: the per-task deadline, or until the next tick."""
    seconds = task_seconds(task_name, "STARTING_DEADLINE_SECONDS")
    return tick + (timedelta(seconds=seconds) if seconds is not None else gap)


def latest_ticks(task, now: datetime, count: int = STRIP_TICKS) -> list[Tick]:
    """The task's latest `count` ticks up to `now`, oldest first, each classified."""
    schedule = task.cron_schedule
    moments = [schedule.latest_tick(now)]
    while len(moments) < count:
        moments.append(schedule.latest_tick(moments[-1] - timedelta(microseconds=1)))
    moments.reverse()
    window = TaskRun.objects.filter(task=task.name, tick__gte=moments[0], tick__lte=moments[-1])
    by_tick: dict[datetime, list[TaskRun]] = {}
    deciding = window.filter(status__in=DECIDING).order_by("tick", "started_at")
    for row in deciding.only("pk", "task", "trigger", "status", "tick", "late_ms", "started_at"):
        by_tick.setdefault(row.tick, []).append(row)
    open_ticks = [at for at in moments if at not in by_tick]  # a deciding row beats a skip
    if open_ticks:
        skips = window.filter(status=RunStatus.SKIPPED, tick__in=open_ticks)
        for tick, pk, trigger in (
            skips.values("tick").annotate(pk=Min("pk"), first=Min("trigger")).order_by()
            .values_list("tick", "pk", "first")
        ):  # fmt: skip
            skip = TaskRun(pk=pk, task=task.name, trigger=trigger, status=RunStatus.SKIPPED)
            by_tick.setdefault(tick, []).append(skip)
    first_run = TaskRun.objects.filter(task=task.name).order_by("started_at").first()
    gaps = zip(moments, [*moments[1:], schedule.next_tick(moments[-1])], strict=True)
    return [
        classify(task.name, at, by_tick.get(at, []), following - at, now, first_run)
        for at, following in gaps
    ]


def classify(name, at, runs, gap, now, first_run) -> Tick:
    """One tick's status: a success serves it, else the worst thing that happened to it."""
    for run in runs:
        if run.status == RunStatus.SUCCEEDED:
            late = run.late_ms if run.late_ms is not None else 0
            status = "late" if late > gap.total_seconds() * 1000 / LATE_FRACTION else "served"
            return Tick(at, status, run, run.late_ms)
    for wanted, status in (
        (RunStatus.FAILED, "failed"),
        (RunStatus.RUNNING, "pending"),
        (RunStatus.MISSED, "missed"),
        (RunStatus.SKIPPED, "skipped"),
    ):
        run = next((r for r in runs if r.status == wanted), None)
        if run is not None:
            return Tick(at, status, run, run.late_ms, now < starting_deadline(name, at, gap))
    if first_run is None or at < first_run.started_at.replace(second=0, microsecond=0):
        return Tick(at, "", None, None)  # before the log began: neither served nor missed
    if now < starting_deadline(name, at, gap):
        return Tick(at, "pending", None, None, open=True)
    return Tick(at, "missed", None, None)
