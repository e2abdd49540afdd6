"""The per-task summary shown on the maintenance app index of the admin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.db import DatabaseError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import escape
from django.utils.safestring import mark_safe

from maintenance import registry
from maintenance.admin.permissions import PAUSE_TASK, RUN_TASK
from maintenance.isotime import iso_utc
from maintenance.logs.control_chars import escape_controls
from maintenance.observe.status import duration_text, maintenance_status, status_now
from maintenance.observe.ticks import STRIP_TICKS, Tick, latest_ticks
from maintenance.runs.pauses import DURATION_CHOICES

register = template.Library()

# What a task's state is called on the page, at a glance; the words an operator uses.
HEALTHY, FAILING, PAUSED, OFF = "healthy", "failing", "paused", "switched off"
GATE_PREFIX = "Skipped: "  # gate reasons are written as a skipped run's message


@register.inclusion_tag("maintenance/task_summary.html", takes_context=True)
def task_summary(context: template.Context) -> dict[str, Any]:
    try:
        status = maintenance_status()
    except DatabaseError:
        status = None
    request = context.get("request")
    user = getattr(request, "user", None)
    tasks = list(status["tasks"].values()) if status else []
    return {
        "status": status,
        "rows": [task_row(task) for task in tasks],
        "paused_count": sum(1 for task in tasks if task["paused"]),
        "can_run": bool(user and user.has_perm(RUN_TASK)),
        "can_pause": bool(user and user.has_perm(PAUSE_TASK)),
        "durations": DURATION_CHOICES,
        "csrf_token": context.get("csrf_token"),
        "request": request,
    }


def task_row(task: dict[str, Any]) -> dict[str, Any]:
    """A task's status as the page shows it: its state, and the one line that explains it."""
    if task["paused"]:
        until = utc_time(task["pausedUntil"]) if task["pausedUntil"] else "resumed"
        state = PAUSED
        detail = f"by {task['pausedBy']} until {until}: {task['pausedReason']}"
    elif not task["enabled"]:
        state, detail = OFF, (task["disabledReason"] or "").removeprefix(GATE_PREFIX)
    elif task["healthy"]:
        state, detail = HEALTHY, ""
    else:
        state, detail = FAILING, task["problem"]
        last = task["lastRun"]
        if last and last["status"] == "failed":
            detail = f"{detail}; last run failed: {last['error']}"
    return {
        "name": task["task"],
        "task": task,
        "state": state,
        "state_class": state.replace(" ", "-"),
        "detail": escape_controls(detail),
        "warning": task.get("warning"),
    }


@register.filter
def utc_time(iso: str | None) -> str:
    """An instant as a person scans it: `18:40 UTC` today, `Nov 24 18:40 UTC` otherwise
    (the full ISO time is in the element's title)."""
    moment = _parse(iso)
    if moment is None:
        return "-"
    if moment.date() == timezone.now().astimezone(moment.tzinfo).date():
        return f"{moment:%H:%M} UTC"
    return f"{moment:%b %d %H:%M} UTC".replace(" 0", " ", 1)


@register.filter
def soft_breaks(name: str) -> str:
    """A snake_case name that may wrap after its underscores in a narrow column."""
    return mark_safe(escape(name).replace("_", "_<wbr>"))  # noqa: S308 - escaped first


@register.filter
def every(seconds: int) -> str:
    """`600` as `10 min`, `3600` as `1 h`."""
    return duration_text(seconds)


def _parse(iso: str | None) -> datetime | None:
    if not iso:
        return None
    return parse_datetime(iso)


@register.inclusion_tag("maintenance/tick_strips.html")
def tick_strips() -> dict[str, Any]:
    """One row per task on the run log: its latest ticks as coloured cells, oldest first."""
    now = status_now()
    rows = [
        {"task": task.name, "ticks": [tick_cell(t) for t in latest_ticks(task, now)]}
        for task in registry.all_tasks()
    ]
    return {"rows": rows, "count": STRIP_TICKS}


def tick_cell(tick: Tick) -> dict[str, str]:
    """A strip cell: the tick, its status, and a sentence a person reads on hover."""
    when = tick.at.strftime("%H:%M UTC")
    if tick.status in ("served", "late"):
        late = f", {tick.late_ms / 1000:.1f} s late" if tick.late_ms is not None else ""
        title = f"{when}: served by {tick.run.trigger}{late}"
    elif tick.status == "":
        title = f"{when}: before the first recorded run"
    elif tick.run is not None:
        title = f"{when}: {tick.status} ({tick.run.trigger})"
    else:
        title = f"{when}: {tick.status}"
    # Before the log began is neither served nor missed: `pending` (a neutral cell).
    return {
        "iso": iso_utc(tick.at),
        "status": tick.status or "pending",
        "title": title,
        "before": tick.status == "",
    }
