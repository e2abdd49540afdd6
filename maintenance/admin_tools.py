"""Admin building blocks shared by every app whose rows expire or whose tasks can be run."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from .models import Trigger
from .runner import RunOutcome, run_task


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [("expired", "Expired"), ("active", "Active")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "expired":
            return queryset.filter(expires_at__lt=now)
        if self.value() == "active":
            return queryset.filter(expires_at__gte=now)
        return queryset


def mask(secret: str, shown: int = 4) -> str:
    """Enough of a secret to tell two rows apart, never enough to use it."""
    if not secret:
        return ""
    return f"{secret[:shown]}…({len(secret)} chars)"


def run_task_action(task_name: str, label: str):
    """An admin action that runs `task_name` now, recorded with trigger `admin`."""

    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        report_outcome(modeladmin, request, run_task(task_name, Trigger.ADMIN))

    action.__name__ = f"run_{task_name}"
    action.short_description = label
    return action


def report_outcome(modeladmin: admin.ModelAdmin, request: HttpRequest, outcome: RunOutcome) -> None:
    """The outcome as an admin message: success, warning for a skip, error for a failure."""
    if outcome.failed:
        text = f"{outcome.task} failed: {outcome.error} (run {outcome.run_id})"
        modeladmin.message_user(request, text, messages.ERROR)
    else:
        level = messages.WARNING if outcome.skipped else messages.SUCCESS
        modeladmin.message_user(request, f"{outcome.message} (run {outcome.run_id})", level)
