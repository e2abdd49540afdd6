from django.contrib import admin

from maintenance.admin.actions import run_task_action
from maintenance.admin.permissions import ActionPermissionsAdmin
from oauth.models import ExpiringModel, OAuthSession, PKCEState
from oauth.tasks import OAUTH_SESSION_CLEANUP, PKCE_CLEANUP


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [("expired", "Expired"), ("active", "Active")]

    def queryset(self, request, queryset):
        if self.value() == "expired":
            return queryset.expired()
        if self.value() == "active":
            return queryset.active()
        return queryset


def mask(secret: str, shown: int = 4) -> str:
    """Enough of a secret to tell two rows apart, never enough to use it."""
    if not secret:
        return ""
    return f"{secret[:shown]}…({len(secret)} chars)"


class ExpiringAdmin(ActionPermissionsAdmin):
    """Read-only inspection of short-lived OAuth rows keyed by a `state`."""

    list_filter = [ExpiryFilter, "created_at"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="state")
    def short_state(self, obj: ExpiringModel) -> str:
        return f"{obj.state[:12]}…"

    @admin.display(boolean=True)
    def expired(self, obj: ExpiringModel) -> bool:
        return obj.is_expired


@admin.register(PKCEState)
class PKCEStateAdmin(ExpiringAdmin):
    list_display = ["short_state", "server_uuid", "user", "created_at", "expires_at", "expired"]
    search_fields = ["state", "server_uuid", "redirect_uri", "user__username", "user__email"]
    fields = [
        "state",
        "server_uuid",
        "user",
        "redirect_uri",
        "masked_verifier",
        "masked_integrity_hash",
        "created_at",
        "expires_at",
    ]
    readonly_fields = fields
    actions = [run_task_action(PKCE_CLEANUP, "Run PKCE cleanup now (deletes all expired states)")]

    @admin.display(description="code verifier")
    def masked_verifier(self, obj: PKCEState) -> str:
        return mask(obj.code_verifier)

    @admin.display(description="integrity hash")
    def masked_integrity_hash(self, obj: PKCEState) -> str:
        return mask(obj.integrity_hash)


@admin.register(OAuthSession)
class OAuthSessionAdmin(ExpiringAdmin):
    list_display = [
        "short_state",
        "provider",
        "server_uuid",
        "profile_uuid",
        "created_at",
        "expires_at",
        "expired",
    ]
    list_filter = [ExpiryFilter, "provider", "created_at"]
    search_fields = ["state", "server_uuid", "profile_uuid", "callback_url", "provider"]
    readonly_fields = [
        "state",
        "server_uuid",
        "profile_uuid",
        "callback_url",
        "provider",
        "created_at",
        "expires_at",
    ]
    actions = [
        run_task_action(
            OAUTH_SESSION_CLEANUP, "Run OAuth session cleanup now (deletes all expired sessions)"
        )
    ]
