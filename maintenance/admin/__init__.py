"""The admin as an inspection console: the run log, a per-task health summary on the
maintenance app index (templates/admin/maintenance/app_index.html), "run now", and
pause / resume (`pauses.py`), recorded with the admin user's name."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from maintenance import registry
from maintenance.admin.actions import report_outcome
from maintenance.admin.permissions import PAUSE_TASK, RUN_TASK, require
from maintenance.admin.readonly import ReadOnlyAdmin
from maintenance.logs.control_chars import escape_controls
from maintenance.models import TaskPause, TaskRun, Trigger
from maintenance.runs import pauses
from maintenance.runs.runner import run_task


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyAdmin):
    # The log is evidence; retention prunes it (MAINTENANCE_RUN_RETENTION_DAYS).
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
        "visible_error",
        "host",
        "pid",
    ]
    readonly_fields = fields

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
            return escape_controls(obj.error[:120])
        items = (obj.result or {}).items()
        return escape_controls(", ".join(f"{key}={value}" for key, value in items))

    @admin.display(description="error")
    def visible_error(self, obj: TaskRun) -> str:
        # Skip reasons recorded by older versions may hold a pause reason's control chars.
        return escape_controls(obj.error)

    @admin.display(description="result")
    def pretty_result(self, obj: TaskRun) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.result, indent=2, sort_keys=True))

    def get_urls(self):
        def post_view(view):
            return self.admin_site.admin_view(require_POST(view))

        return [
            path("run/<str:task>/", post_view(self.run_now_view), name="maintenance_taskrun_run"),
            path("pause/<str:task>/", post_view(self.pause_view), name="maintenance_task_pause"),
            path("resume/<str:task>/", post_view(self.resume_view), name="maintenance_task_resume"),
            *super().get_urls(),
        ]

    def run_now_view(self, request: HttpRequest, task: str) -> HttpResponseRedirect:
        """POST only, staff only (admin_view), CSRF-checked, `maintenance.run_task`;
        recorded with trigger `admin`."""
        require(request, RUN_TASK)
        known_task(task)
        report_outcome(self, request, run_task(task, Trigger.ADMIN))
        return back(request)

    def pause_view(self, request: HttpRequest, task: str) -> HttpResponseRedirect:
        """Pause `task` on every host, recorded with this admin user; POST `reason` (required)
        and `for` (`30m`, `2h`, `1d`; empty: until resumed). A bad value changes nothing."""
        require(request, PAUSE_TASK)
        known_task(task)
        duration = request.POST.get("for", "")
        try:
            length = pauses.parse_duration(duration) if duration else None
            done = pauses.pause(task, request.POST.get("reason", ""), by(request), length)
        except pauses.BadPause as exc:
            self.message_user(request, f"{task} was not paused: {exc}.", messages.ERROR)
            return back(request)
        self.message_user(request, pauses.paused_note(done.pause), messages.SUCCESS)
        if done.in_progress:
            self.message_user(request, pauses.in_progress_note(task, done.run), messages.WARNING)
        return back(request)

    def resume_view(self, request: HttpRequest, task: str) -> HttpResponseRedirect:
        """Pausing and resuming change what every host does: `change_taskpause`, not just
        a staff login."""
        require(request, PAUSE_TASK)
        known_task(task)
        lifted = pauses.resume(task, by(request))
        if lifted is None:
            self.message_user(request, f"{task} was not paused; nothing changed.", messages.INFO)
        else:
            text = f"Resumed {task} (it was {lifted.describe()}); its next trigger runs it."
            self.message_user(request, text, messages.SUCCESS)
        return back(request)


def known_task(task: str) -> None:
    if task not in registry.names():
        raise Http404(f"No task {task!r}")


def by(request: HttpRequest) -> str:
    return request.user.get_username()


def back(request: HttpRequest) -> HttpResponseRedirect:
    """To the page the form was on (`next`, when it is on this site), else the app index."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("admin:app_list", kwargs={"app_label": "maintenance"})
    return HttpResponseRedirect(target)


@admin.register(TaskPause)
class TaskPauseAdmin(ReadOnlyAdmin):
    """The pauses, for inspection; pausing and resuming are the buttons on the app index,
    which log who did it."""

    list_display = ["task", "in_force", "paused_by", "paused_at", "paused_until", "visible_reason"]
    search_fields = ["task", "reason", "paused_by"]
    fields = ["task", "visible_reason", "paused_by", "paused_at", "paused_until"]
    readonly_fields = fields

    @admin.display(boolean=True, description="in force")
    def in_force(self, obj: TaskPause) -> bool:
        return obj.in_force()

    @admin.display(description="reason", ordering="reason")
    def visible_reason(self, obj: TaskPause) -> str:
        """Reasons stored by older versions may hold control characters: shown escaped."""
        return escape_controls(obj.reason)
