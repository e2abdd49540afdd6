from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from emails.admin_forms import PreviewForm, SuppressionActionForm, SuppressionForm
from emails.models import EmailEvent, EmailPreference, EmailStatus, EmailSuppression, ScheduledEmail
from emails.outbox.suppression import suppress, unsuppress
from emails.preview import render_preview
from emails.tasks import SCHEDULED_EMAILS
from maintenance.admin.actions import run_task_action
from maintenance.admin.permissions import ActionPermissionsAdmin
from maintenance.admin.readonly import ReadOnlyAdmin


@admin.register(ScheduledEmail)
class ScheduledEmailAdmin(ActionPermissionsAdmin):
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
        "preview",
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

    @admin.display(description="preview")
    def preview(self, obj: ScheduledEmail) -> str:
        url = reverse("admin:emails_scheduledemail_preview")
        return format_html(
            '<a href="{}?user={}&amp;email_type={}">Preview this email (HTML and text)</a>',
            url,
            obj.user_id,
            obj.email_type,
        )

    def get_urls(self):
        preview = self.admin_site.admin_view(self.preview_view)
        return [
            path("preview/", preview, name="emails_scheduledemail_preview"),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest):
        """Each email type rendered for a chosen user, as it would be sent now."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = PreviewForm(request.GET or None)
        context = {
            **self.admin_site.each_context(request),
            "title": "Preview an onboarding email",
            "opts": self.opts,
            "form": form,
            "preview": render_preview(**form.cleaned_data) if form.is_valid() else None,
        }
        return TemplateResponse(request, "admin/emails/preview.html", context)

    @admin.action(
        description="Retry now (failed or cancelled; resets attempts)", permissions=["change"]
    )
    def retry_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.retry_now()
        self.message_user(request, f"{count} emails queued to send now.", messages.SUCCESS)

    @admin.action(description="Cancel (pending only)", permissions=["change"])
    def cancel_pending(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.filter(status=EmailStatus.PENDING).cancel("cancelled by an admin")
        self.message_user(request, f"{count} pending emails cancelled.", messages.SUCCESS)


@admin.register(EmailPreference)
class EmailPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "onboarding_opt_out", "opted_out_at", "updated_at"]
    list_filter = ["onboarding_opt_out"]
    search_fields = ["user__email", "user__username"]
    raw_id_fields = ["user"]


@admin.register(EmailSuppression)
class EmailSuppressionAdmin(admin.ModelAdmin):
    """Addresses nothing is sent to. Added by the ESP webhooks or by hand (with a reason);
    removed by hand with a reason, kept in the admin's history."""

    form = SuppressionForm
    action_form = SuppressionActionForm
    list_display = ["address", "event", "esp", "short_reason", "created_at", "added_by"]
    list_filter = ["event", "esp", "created_at"]
    search_fields = ["address", "reason"]
    date_hierarchy = "created_at"
    list_select_related = ["added_by"]
    actions = ["remove_with_reason"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["address", "reason"]
        return ["address", "reason", "event", "esp", "created_at", "added_by"]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj is not None else []

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # an entry is added or removed, never edited

    def has_delete_permission(self, request, obj=None) -> bool:
        # Only through the action below, which asks for a reason.
        return obj is None and super().has_delete_permission(request)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="reason")
    def short_reason(self, obj: EmailSuppression) -> str:
        return obj.reason[:80]

    def save_model(self, request, obj: EmailSuppression, form, change: bool) -> None:
        """Added through `suppress`, as the webhooks add theirs; `obj` becomes the entry
        (the admin's history and redirect use it)."""
        done = suppress(obj.address, reason=obj.reason, added_by=request.user)
        obj.pk, obj.created_at, obj.added_by = done.entry.pk, done.entry.created_at, request.user
        if done.cancelled:
            self.message_user(request, f"{done.cancelled} pending emails cancelled.", messages.INFO)

    @admin.action(
        description="Remove from the suppression list (give a reason)", permissions=["delete"]
    )
    def remove_with_reason(self, request: HttpRequest, queryset: QuerySet) -> None:
        reason = request.POST.get("reason", "").strip()
        if not reason:
            self.message_user(
                request, "Give a reason to remove addresses; nothing removed.", messages.ERROR
            )
            return
        entries = list(queryset)
        LogEntry.objects.log_actions(
            request.user.pk, entries, DELETION, change_message=f"Unsuppressed: {reason}"
        )
        for entry in entries:
            unsuppress(entry.address)
        self.message_user(
            request,
            f"{len(entries)} addresses removed from the suppression list. Their cancelled "
            "emails stay cancelled; retry them from Scheduled emails if they should go.",
            messages.SUCCESS,
        )


@admin.register(EmailEvent)
class EmailEventAdmin(ReadOnlyAdmin):
    """What the ESPs reported, as stored by the webhooks: read-only."""

    list_display = ["received_at", "esp", "event_type", "recipient", "action", "occurred_at"]
    list_filter = ["esp", "event_type", "received_at"]
    search_fields = ["recipient", "event_id", "message_id"]
    date_hierarchy = "received_at"
