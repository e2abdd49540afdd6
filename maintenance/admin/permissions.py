"""Who may do what in the admin: viewing needs only the view permissions; running a task,
pausing one, retrying or cancelling emails each need their own (README, "Admin
permissions"). Refusals are 403 and change nothing; superusers have every permission."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

RUN_TASK = "maintenance.run_task"
PAUSE_TASK = "maintenance.change_taskpause"


def require(request: HttpRequest, permission: str) -> None:
    """Refuse (403) a request whose user lacks `permission`, before anything changes."""
    if not request.user.has_perm(permission):
        raise PermissionDenied


class ActionPermissionsAdmin(admin.ModelAdmin):
    """A changelist whose actions each name a permission (`@admin.action(permissions=...)`).

    Django leaves an action out of the menu for a user without its permission, and a POST
    of it anyway (a stale page, a forged form) only redirects back with "No action
    selected". Here that POST is a 403, so a refusal reads as one. Actions that run a task
    name `run_task`, answered by `has_run_task_permission`.
    """

    def has_run_task_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RUN_TASK)

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        if request.method == "POST" and self.refused_action(request):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)

    def refused_action(self, request: HttpRequest) -> bool:
        """True when the POST names one of this changelist's actions this user may not take."""
        name = request.POST.get("action", "")
        return name in self.declared_action_names() and name not in self.get_actions(request)

    def declared_action_names(self) -> set[str]:
        own = {
            action if isinstance(action, str) else action.__name__ for action in self.actions or ()
        }
        return own | {name for name, _ in self.admin_site.actions}
