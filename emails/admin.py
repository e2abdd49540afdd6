from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from maintenance.admin_actions import run_task_action

from .models import EmailPreference, EmailStatus, ScheduledEmail
from .tasks import SCHEDULED_EMAILS


@admin.register(ScheduledEmail)
class ScheduledEmailAdmin(admin.ModelAdmin):
    list_display = [
        "email_type",
        "user_email",
        "status",
        "scheduled_for",
        "attempts",
        "sent_at",
        "short_error",
        "created_at",
    ]
    list_filter = ["status", "email_type", "scheduled_for"]
    search_fields = ["user__email", "user__username"]
    date_hierarchy = "scheduled_for"
    list_select_related = ["user"]
    readonly_fields = [
        "id",
        "user",
        "email_type",
        "status",
        "scheduled_for",
        "attempts",
        "last_error",
        "sent_at",
        "claimed_until",
        "metadata",
        "created_at",
    ]
    actions = [
        "retry_now",
        "cancel_pending",
        run_task_action(SCHEDULED_EMAILS, "Send due emails now (task scheduled_emails)"),
    ]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="user", ordering="user__email")
    def user_email(self, obj: ScheduledEmail) -> str:
        return obj.user.email or obj.user.get_username()

    @admin.display(description="last error")
    def short_error(self, obj: ScheduledEmail) -> str:
        return obj.last_error[:80]

    @admin.action(description="Retry now (failed or cancelled; resets attempts)")
    def retry_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.retry_now()
        self.message_user(request, f"{count} emails queued to send now.", messages.SUCCESS)

    @admin.action(description="Cancel (pending only)")
    def cancel_pending(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.filter(status=EmailStatus.PENDING).cancel("cancelled by an admin")
        self.message_user(request, f"{count} pending emails cancelled.", messages.SUCCESS)


@admin.register(EmailPreference)
class EmailPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "onboarding_opt_out", "opted_out_at", "updated_at"]
    list_filter = ["onboarding_opt_out"]
    search_fields = ["user__email", "user__username"]
    raw_id_fields = ["user"]
