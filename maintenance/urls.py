"""Every task's HTTP endpoint, at the `path` its declaration names, plus status, metrics
and health: a declared task needs no URL conf of its own."""

from __future__ import annotations

from django.urls import URLPattern, path

from maintenance import registry
from maintenance.views import TaskView, healthz, metrics, status


def task_patterns() -> list[URLPattern]:
    return [
        path(task.path.lstrip("/"), TaskView.as_view(task_name=task.name), name=task.name)
        for task in registry.all_tasks()
        if task.path
    ]


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/maintenance/status", status, name="maintenance-status"),
    path("metrics", metrics, name="metrics"),
    *task_patterns(),
]
