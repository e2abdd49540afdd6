"""Running a task from the admin, for every app whose changelist offers it."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from maintenance.models import Trigger
from maintenance.outcome import RunOutcome
from maintenance.registry import Task
from maintenance.runs.runner import run_task


def run_task_action(task: Task, label: str):
    """An admin action that runs `task` now, recorded with trigger `admin`; offered only
    to users with `maintenance.run_task` (the admin must be an `ActionPermissionsAdmin`)."""

    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        report_outcome(modeladmin, request, run_task(task.name, Trigger.ADMIN))

    action.__name__ = f"run_{task.name}"
    return admin.action(description=label, permissions=["run_task"])(action)


def report_outcome(modeladmin: admin.ModelAdmin, request: HttpRequest, outcome: RunOutcome) -> None:
    """The outcome as an admin message: success, warning for a skip, error for a failure."""
    if outcome.failed:
        text = f"{outcome.task} failed: {outcome.error} (run {outcome.run_id})"
        modeladmin.message_user(request, text, messages.ERROR)
    else:
        level = messages.WARNING if outcome.skipped else messages.SUCCESS
        modeladmin.message_user(request, f"{outcome.message} (run {outcome.run_id})", level)
