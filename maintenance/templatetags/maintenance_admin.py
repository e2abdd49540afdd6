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
