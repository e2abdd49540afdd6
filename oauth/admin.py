from django.contrib import admin

from maintenance.admin_tools import ExpiryFilter, mask, run_task_action

from .models import PKCEState


@admin.register(PKCEState)
class PKCEStateAdmin(admin.ModelAdmin):
    list_display = ["short_state", "server_uuid", "user", "created_at", "expires_at", "expired"]
    list_filter = [ExpiryFilter, "created_at"]
    search_fields = ["state", "server_uuid", "redirect_uri", "user__username", "user__email"]
    date_hierarchy = "created_at"
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
    actions = [run_task_action("pkce_cleanup", "Run PKCE cleanup now (deletes all expired states)")]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="state")
    def short_state(self, obj: PKCEState) -> str:
        return f"{obj.state[:12]}…"

    @admin.display(boolean=True)
    def expired(self, obj: PKCEState) -> bool:
        return obj.is_expired

    @admin.display(description="code verifier")
    def masked_verifier(self, obj: PKCEState) -> str:
        return mask(obj.code_verifier)

    @admin.display(description="integrity hash")
    def masked_integrity_hash(self, obj: PKCEState) -> str:
        return mask(obj.integrity_hash)
