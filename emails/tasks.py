"""The emails app's maintenance task, declared once; `EmailsConfig.ready()` imports this."""

from __future__ import annotations

from emails.conf import email_settings
from emails.models import ScheduledEmail
from emails.outbox import process_scheduled_emails
from maintenance.registry import Option, Task, positive, register
from maintenance.tables.counts import bounded_count


def cloud_only() -> str | None:
    """Onboarding emails go out only from the cloud deployment."""
    if email_settings.CLOUD_DEPLOY:
        return None
    return "Skipped: CLOUD_DEPLOY is not true; scheduled emails are sent only when it is."


def email_backlog() -> dict[str, int]:
    """Counted up to MAINTENANCE_BACKLOG_EXACT_LIMIT, estimated past it (`bounded_count`)."""
    return {
        "due_emails": bounded_count(ScheduledEmail.objects.due()),
        "failed_emails": bounded_count(ScheduledEmail.objects.failed()),
    }


SCHEDULED_EMAILS = register(
    Task(
        name="scheduled_emails",
        func=process_scheduled_emails,
        description="Send due welcome and follow-up emails.",
        message=(
            "Sent {sent} scheduled emails ({failed} failed, {cancelled} cancelled, "
            "{remaining} remaining)"
        ),
        cron="0 * * * *",
        command="process_scheduled_emails",
        path="/api/emails/process-scheduled",
        order=20,
        gate=cloud_only,
        backlog=email_backlog,
        options=(
            Option(
                "limit",
                "Handle at most N emails in this run (default SCHEDULED_EMAILS_LIMIT).",
                parse=positive(int),
                metavar="N",
            ),
            Option(
                "max_seconds",
                "Stop claiming new emails after S seconds (default SCHEDULED_EMAILS_MAX_SECONDS).",
                parse=positive(float),
                metavar="S",
            ),
        ),
    )
)
