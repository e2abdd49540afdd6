from django.contrib import admin

from .models import TaskLock, TaskRun


@admin.register(TaskRun)
class TaskRunAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "trigger", "status", "started_at", "duration_ms", "host", "pid"]
    list_filter = ["task", "trigger", "status", "started_at"]
    search_fields = ["task", "error", "host"]
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in TaskRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TaskLock)
class TaskLockAdmin(admin.ModelAdmin):
    list_display = ["task", "owner", "acquired_at", "expires_at"]

    def has_add_permission(self, request) -> bool:
        return False
