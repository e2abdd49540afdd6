"""Vercel Cron: `vercel.json` with one `crons` entry per task endpoint.

Vercel sends `GET` with `Authorization: Bearer $CRON_SECRET` when `CRON_SECRET` is set in
the project's environment, which the task endpoints accept. Schedules are in UTC and in
numbers (Vercel takes no month or weekday names).
"""

from __future__ import annotations

import json

from maintenance.registry import Task
from maintenance.schedules.base import (
    Export,
    ExportFile,
    ExportOptions,
    schedule_of,
    without_endpoint,
)
from maintenance.schedules.cron import numeric

FILE_NAME = "vercel.json"


def export(tasks: list[Task], options: ExportOptions) -> Export:
    crons = []
    for task in tasks:
        schedule_of(task)
        if task.path:
            crons.append({"path": task.path, "schedule": numeric(task.schedule)})
    left_out = [without_endpoint(task, "vercel") for task in tasks if not task.path]
    return Export([ExportFile(FILE_NAME, json.dumps({"crons": crons}, indent=2) + "\n")], left_out)
