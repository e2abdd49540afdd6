"""The per-task summary shown on the maintenance app index of the admin."""

from __future__ import annotations

from typing import Any

from django import template
from django.db import DatabaseError

from ..status import maintenance_status

register = template.Library()


@register.inclusion_tag("maintenance/task_summary.html", takes_context=True)
def task_summary(context: template.Context) -> dict[str, Any]:
    try:
        status = maintenance_status()
    except DatabaseError:
        status = None
    return {
        "status": status,
        "csrf_token": context.get("csrf_token"),
        "request": context.get("request"),
    }


@register.filter
def utc_time(iso: str | None) -> str:
    """`2026-11-25T06:54:06.217982Z` as `2026-11-25 06:54:06 UTC`: easier to scan."""
    if not iso:
        return "-"
    return f"{iso[:10]} {iso[11:19]} UTC"
