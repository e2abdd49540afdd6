"""A pause nobody lifted: the task's work piles up while every trigger skips it."""

from __future__ import annotations

from typing import Any

from django.core.checks import Warning, register

from maintenance.models import TaskPause

W301 = "maintenance.W301"


@register("maintenance", deploy=True)
def check_long_pauses(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Says nothing when the pauses cannot be read (no database yet, not migrated, database
    access refused in this process): a check must never break `manage.py check`."""
    try:
        paused = {pause.task: pause for pause in TaskPause.objects.in_force()}
    except Exception:
        return []
    return [
        Warning(
            f"{name} has been {pause.describe()}; that is more than a day, and every trigger "
            "skips it meanwhile.",
            hint=f"Resume it with `python manage.py maintenance_resume {name}` once the cause "
            "is fixed, or pause it again with --for so the pause lapses by itself.",
            id=W301,
        )
        for name, pause in sorted(paused.items())
        if pause.is_long()
    ]
