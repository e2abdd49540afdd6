"""The maintenance status shared by `GET /api/maintenance/status`, the
`maintenance_status` command and the admin summary: one function, three front doors.

A task is healthy when it succeeded within twice its interval (one missed run is
tolerated, two are not). A task its gate shuts off here (emails without CLOUD_DEPLOY) is
reported as disabled and counts as healthy: nothing is expected of it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from . import registry
from .isotime import iso_utc
from .models import RunStatus, TaskLock, TaskRun

STALE_FACTOR = 2
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


def task_status(task: registry.Task, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    blocked = task.blocked_reason()
    last_run = TaskRun.objects.last_run(task.name)
    last_success = TaskRun.objects.last_success(task.name)
    allowed_gap = task.every * STALE_FACTOR
    if blocked:
        healthy, problem, next_due = True, None, None
    elif last_success is None:
        healthy, problem, next_due = False, "has never succeeded", now
    else:
        healthy = now - last_success.started_at <= allowed_gap
        problem = None if healthy else f"no success in the last {_duration(allowed_gap)}"
        next_due = last_success.started_at + task.every
    return {
        "task": task.name,
        "description": task.description,
        "schedule": task.schedule,
        "intervalSeconds": int(task.every.total_seconds()),
        "enabled": blocked is None,
        "disabledReason": blocked,
        "lastRun": run_summary(last_run),
        "lastSuccess": run_summary(last_success),
        "nextDue": iso_utc(next_due),
        "healthy": healthy,
        "problem": problem,
        "abandonedRuns": abandoned_runs(task.name, now),
    }


def abandoned_runs(name: str, now: datetime) -> list[dict[str, Any]]:
    """Runs left `running` by a process that no longer holds the task (it died): the next
    run of the task closes them as failed; until then they show here."""
    running = TaskRun.objects.for_task(name).filter(status=RunStatus.RUNNING)[:ABANDONED_SHOWN]
    lease = TaskLock.objects.filter(task=name, expires_at__gte=now).first()
    return [
        {**run_summary(run), "host": run.host, "pid": run.pid}
        for run in running
        if lease is None or (run.host, run.pid) != (lease.host, lease.pid)
    ]


def backlog() -> dict[str, int]:
    """Every task's waiting work, merged, by kind (`expired_pkce_states`, `due_emails`)."""
    counts: dict[str, int] = {}
    for task in registry.all_tasks():
        counts.update(task.pending())
    return counts


def maintenance_status(now: datetime | None = None) -> dict[str, Any]:
    """The whole status body; `healthy` is false when any enabled task is stale."""
    now = now or timezone.now()
    tasks = {task.name: task_status(task, now) for task in registry.all_tasks()}
    return {
        "healthy": all(t["healthy"] for t in tasks.values()),
        "timestamp": iso_utc(now),
        "tasks": tasks,
        "backlog": {camel_case(kind): count for kind, count in backlog().items()},
    }


def _duration(gap: Any) -> str:
    seconds = int(gap.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
