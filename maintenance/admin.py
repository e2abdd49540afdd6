"""The admin as an inspection console: the run log, a per-task health summary on the
maintenance app index (templates/admin/maintenance/app_index.html) and "run now"."""

from __future__ import annotations

import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from . import registry
from .admin_actions import report_outcome
from .models import TaskLock, TaskRun, Trigger
from .runner import run_task


@admin.register(TaskRun)
class TaskRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "task",
        "trigger",
        "status",
        "started_at",
        "duration",
        "summary",
        "host",
        "pid",
    ]
    list_filter = ["task", "trigger", "status", "started_at"]
    search_fields = ["task", "error", "host"]
    date_hierarchy = "started_at"
    fields = [
        "task",
        "trigger",
        "status",
        "started_at",
        "finished_at",
        "duration",
        "pretty_result",
        "error",
        "host",
        "pid",
    ]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the log is evidence; retention prunes it (MAINTENANCE_RUN_RETENTION_DAYS)

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, obj: TaskRun) -> str:
        if obj.duration_ms is None:
            return "running" if obj.status == "running" else "-"
        if obj.duration_ms < 1000:
            return f"{obj.duration_ms} ms"
        return f"{obj.duration_ms / 1000:.1f} s"

    @admin.display(description="result / error")
    def summary(self, obj: TaskRun) -> str:
        if obj.error:
            return obj.error[:120]
        return ", ".join(f"{key}={value}" for key, value in (obj.result or {}).items())

    @admin.display(description="result")
    def pretty_result(self, obj: TaskRun) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.result, indent=2, sort_keys=True))

    def get_urls(self):
        run_now = self.admin_site.admin_view(require_POST(self.run_now_view))
        return [
            path("run/<str:task>/", run_now, name="maintenance_taskrun_run"),
            *super().get_urls(),
        ]

    def run_now_view(self, request: HttpRequest, task: str) -> HttpResponseRedirect:
        """POST only, staff only (admin_view), CSRF-checked; recorded with trigger `admin`."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if task not in registry.names():
            raise Http404(f"No task {task!r}")
        report_outcome(self, request, run_task(task, Trigger.ADMIN))
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            target = reverse("admin:app_list", kwargs={"app_label": "maintenance"})
        return HttpResponseRedirect(target)


@admin.register(TaskLock)
class TaskLockAdmin(admin.ModelAdmin):
    list_display = ["task", "host", "pid", "acquired_at", "expires_at"]

    def has_add_permission(self, request) -> bool:
        return False
