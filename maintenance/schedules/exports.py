"""One schedule, exported to the scheduler the operator already runs.

Each format is one module with `export(tasks, options) -> Export`, reading the task
declarations and the schedules in force (`<TASK>_CRON` included); nothing here keeps a
list of tasks. `python manage.py maintenance_schedule` is the front door.
"""

from __future__ import annotations

from collections.abc import Callable

from maintenance import registry
from maintenance.schedules import crontab, github_actions, kubernetes, systemd, vercel
from maintenance.schedules.base import Export, ExportFile, ExportOptions, ScheduleError

Exporter = Callable[[list[registry.Task], ExportOptions], Export]

FORMATS: dict[str, Exporter] = {
    "kubernetes": kubernetes.export,
    "systemd": systemd.export,
    "github-actions": github_actions.export,
    "vercel": vercel.export,
    "crontab": crontab.export,
}


def export(format: str, options: ExportOptions) -> Export:
    """Every declared task in `format`; ScheduleError for an unknown format or a schedule
    that cannot be exported (then no file at all)."""
    if format not in FORMATS:
        raise ScheduleError(f"Unknown format {format!r}; choose one of {', '.join(FORMATS)}.")
    return FORMATS[format](registry.all_tasks(), options)


__all__ = ["FORMATS", "Export", "ExportFile", "ExportOptions", "ScheduleError", "export"]
