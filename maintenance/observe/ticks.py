"""A task's latest ticks, classified from the run log: what the tick strip and status show.

One query per task reads the run rows of the whole window (index task_runs_task_tick_idx),
so the cost does not grow with the number of ticks or runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from maintenance.conf import TASK_SETTING_SUFFIXES, task_setting
from maintenance.models import RunStatus, TaskRun

STRIP_TICKS = 48
LATE_FRACTION = 10  # served more than a tenth of the gap after the tick is late


@dataclass(frozen=True)
class Tick:
    at: datetime
    status: str  # served, late, failed, missed, skipped, pending, or "" (before the first run)
    run: TaskRun | None
    late_ms: int | None


def starting_deadline(task_name: str, tick: datetime, gap: timedelta) -> datetime:
    """When a tick stops being servable: the per-task deadline, or until the next tick.
    Read through this one function so ticks-core's STARTING_DEADLINE_SECONDS lands in one line."""
    seconds = None
    if "STARTING_DEADLINE_SECONDS" in TASK_SETTING_SUFFIXES:
        seconds = task_setting(task_name, "STARTING_DEADLINE_SECONDS")
    return tick + (timedelta(seconds=int(seconds)) if seconds else gap)


def latest_ticks(task, now: datetime, count: int = STRIP_TICKS) -> list[Tick]:
    """The task's latest `count` ticks up to `now`, oldest first, each classified."""
    schedule = task.cron_schedule
    moments = [schedule.latest_tick(now)]
    while len(moments) < count:
        moments.append(schedule.latest_tick(moments[-1] - timedelta(microseconds=1)))
    moments.reverse()
    rows = list(
        TaskRun.objects.filter(
            task=task.name, tick__gte=moments[0], tick__lte=moments[-1]
        ).order_by("tick", "started_at")
    )
    first_run = TaskRun.objects.filter(task=task.name).order_by("started_at").first()
    by_tick: dict[datetime, list[TaskRun]] = {}
    for row in rows:
        by_tick.setdefault(row.tick, []).append(row)
    return [
        classify(task.name, at, by_tick.get(at, []), schedule.gap_after(at), now, first_run)
        for at in moments
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
            return Tick(at, status, run, run.late_ms)
    if first_run is None or at < first_run.started_at.replace(second=0, microsecond=0):
        return Tick(at, "", None, None)  # before the log began: neither served nor missed
    if now < starting_deadline(name, at, gap):
        return Tick(at, "pending", None, None)
    return Tick(at, "missed", None, None)
