"""The maintenance status shared by `GET /api/maintenance/status`, the
`maintenance_status` command and the admin summary: one function, three front doors.

A task is healthy when the latest tick past its deadline was served by a success and its
latest finished run did not fail (`tick_health`); the schedule's ticks, not the time since
the last success, also say when it is next due. A task its gate shuts off here (emails
without CLOUD_DEPLOY) is reported as disabled and counts as healthy: nothing is expected
of it. So does a task an operator paused (`pauses.py`), but a pause held for more than a
day carries a `warning`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from maintenance import registry
from maintenance.isotime import iso_utc, utc_minute
from maintenance.models import RunStatus, TaskPause, TaskRun
from maintenance.observe import scheduler_health
from maintenance.observe.ticks import Tick, latest_ticks
from maintenance.runs import clock, pauses

DAY = timedelta(days=1)
SERVED = ("served", "late")
# A strip status as `lastTickStatus` says it: late still served, before the log pending.
TICK_STATUS_SHOWN = {"late": "served", "skipped": "missed", "": "pending"}
ABANDONED_SHOWN = 10


# Words whose camelCase is not their capitalised form, for backlog keys in JSON.
JSON_WORDS = {"oauth": "OAuth"}


def camel_case(kind: str) -> str:
    """`expired_oauth_sessions` (a metrics label) as `expiredOAuthSessions` (a JSON key)."""
    first, *rest = kind.split("_")
    return first + "".join(JSON_WORDS.get(word, word.capitalize()) for word in rest)


def run_summary(run: TaskRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    summary = {
        "id": run.pk,
        "status": run.status,
        "trigger": run.trigger,
        "startedAt": iso_utc(run.started_at),
        "finishedAt": iso_utc(run.finished_at),
        "durationMs": run.duration_ms,
    }
    if run.status == RunStatus.FAILED:
        summary["error"] = run.error
    return summary


def next_due(
    task: registry.Task,
    ticks: list[Tick],
    now: datetime,
    pause: TaskPause | None,
    blocked: str | None,
) -> datetime | None:
    """When the schedule next wants a run: the end of a pause, the current tick while no
    run has taken it yet and its deadline has not passed (it is due now), else the next
    tick; never for a task its gate shuts off here."""
    if pause is not None:
        return pause.paused_until
    if blocked:
        return None
    current = ticks[-1]
    if current.status == "pending" and current.run is None:
        return current.at
    return task.cron_schedule.next_tick(now)


def status_now() -> datetime:
    """The instant a status reading goes by: the database's clock, read once, as the
    triggers read it. A host whose own clock runs fast must not see the next tick's
    deadline as passed before any trigger could have served it."""
    return clock.database(clock.database_now())


def task_status(
    task: registry.Task,
    now: datetime | None = None,
    paused: Mapping[str, TaskPause] | None = None,
) -> dict[str, Any]:
    """One task's status at `now` (the database's clock when not given); `paused` is every
    pause in force (read here when not given)."""
    now = now or status_now()
    pause = (pauses.pauses_in_force() if paused is None else paused).get(task.name)
    blocked = task.blocked_reason()
    last_run = TaskRun.objects.last_run(task.name)
    last_success = TaskRun.objects.last_success(task.name)
    ticks = latest_ticks(task, now, ticks_in_a_day(task))
    healthy, problem = current_health(task, now, pause, blocked, last_success, ticks)
    return {
        "task": task.name,
        "description": task.description,
        "schedule": task.schedule,
        "intervalSeconds": int(task.cron_schedule.typical_gap().total_seconds()),
        "enabled": blocked is None,
        "disabledReason": blocked,
        "lastRun": run_summary(last_run),
        "lastSuccess": run_summary(last_success),
        "nextDue": iso_utc(next_due(task, ticks, now, pause, blocked)),
        "healthy": healthy,
        "problem": problem,
        **tick_summary(task, ticks, now, pause is not None),
        **pauses.summary(pause),
        "warning": _pause_warning(pause, now),
        "abandonedRuns": abandoned_runs(task.name),
    }


def ticks_in_a_day(task: registry.Task) -> int:
    """How many ticks the last 24 h hold (for `missedTicks24h`), at least one."""
    return max(1, int(DAY / task.cron_schedule.typical_gap()))


def tick_summary(
    task: registry.Task, ticks: list[Tick], now: datetime, paused: bool
) -> dict[str, Any]:
    """The tick fields of a task's status: the current tick, what became of it, the next."""
    last = ticks[-1]
    served = next((t for t in reversed(ticks) if t.status in SERVED), None)
    status = "paused" if paused else TICK_STATUS_SHOWN.get(last.status, last.status)
    return {
        "lastTick": iso_utc(last.at),
        "lastTickStatus": status,
        "nextTick": iso_utc(task.cron_schedule.next_tick(now)),
        "missedTicks24h": sum(t.status == "missed" for t in ticks),
        "lateMs": served.late_ms if served else None,
    }


def current_health(
    task: registry.Task,
    now: datetime,
    pause: TaskPause | None,
    blocked: str | None,
    last_success: TaskRun | None,
    ticks: list[Tick] | None = None,
) -> tuple[bool, str | None]:
    """(healthy, problem) for status and `/metrics` alike. A paused task, or one its gate
    shuts off here, is healthy: nothing is expected of it. Only the latest two ticks
    matter (the current one may still be pending), so a caller without the day's ticks
    reads just those."""
    if pause is not None or blocked:
        return True, None
    ticks = ticks if ticks is not None else latest_ticks(task, now, 2)
    return tick_health(task.name, ticks, last_success)


def tick_health(
    name: str, ticks: list[Tick], last_success: TaskRun | None
) -> tuple[bool, str | None]:
    """Healthy when the latest tick past its deadline was served by a success and the
    latest finished run (any trigger) did not fail: a failure is never green. A tick whose
    run failed does not count while it is still servable (before its starting deadline):
    a later success of any trigger, such as an operator's manual run, makes it healthy."""
    if last_success is None:
        return False, "has never succeeded"
    finished = (
        TaskRun.objects.for_task(name)
        .filter(status__in=(RunStatus.SUCCEEDED, RunStatus.FAILED))
        .order_by("-started_at")
        .first()
    )
    if finished is not None and finished.status == RunStatus.FAILED:
        return False, "the latest run failed"
    due = next((t for t in reversed(ticks) if _decided(t)), None)
    if due is None or due.status in SERVED or due.status == "":
        return True, None
    return False, f"the tick of {iso_utc(due.at)} was {due.status}"


def _decided(tick: Tick) -> bool:
    """Whether the tick's fate is known: pending and failed-but-servable ticks are open."""
    return tick.status != "pending" and not (tick.status == "failed" and tick.open)


def _pause_warning(pause: TaskPause | None, now: datetime) -> str | None:
    if pause is None or not pause.is_long(now):
        return None
    since = utc_minute(pause.paused_at)
    return f"paused for more than a day (since {since}); resume it once the cause is fixed"


def abandoned_runs(name: str) -> list[dict[str, Any]]:
    """Runs left `running` by a runner that died (their lease ran out): the next run of the
    task closes them as failed; until then they show here."""
    running = TaskRun.objects.for_task(name).lapsed()[:ABANDONED_SHOWN]
    return [{**run_summary(run), "host": run.host, "pid": run.pid} for run in running]


def backlog() -> dict[str, int]:
    """Every task's waiting work, merged, by kind (`expired_pkce_states`, `due_emails`).

    Each count is bounded (`maintenance/tables/counts.py`): exact up to
    MAINTENANCE_BACKLOG_EXACT_LIMIT rows, estimated past it, so status costs the same at
    any table size."""
    counts: dict[str, int] = {}
    for task in registry.all_tasks():
        counts.update(task.pending())
    return counts


def maintenance_status(now: datetime | None = None) -> dict[str, Any]:
    """The whole status body; `healthy` is false when any enabled task is stale (the
    scheduler thread of the process that answers is shown, but is not part of it: many
    deployments trigger tasks by cron alone). Every task is judged at one instant, the
    database's clock read once."""
    now = now or status_now()
    paused = pauses.pauses_in_force()
    tasks = {task.name: task_status(task, now, paused) for task in registry.all_tasks()}
    return {
        "healthy": all(t["healthy"] for t in tasks.values()),
        "timestamp": iso_utc(now),
        "tasks": tasks,
        "backlog": {camel_case(kind): count for kind, count in backlog().items()},
        # This process's own scheduler thread: each worker answers for itself.
        "scheduler": scheduler_health.in_process(),
    }


def duration_text(seconds: int) -> str:
    """`600` as `10 min`, `3600` as `1 h`: how status and the admin both say a duration."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
