from datetime import timedelta

from django.apps import AppConfig
from django.conf import settings


def cloud_only() -> str | None:
    """Onboarding emails go out only from the cloud deployment."""
    if settings.CLOUD_DEPLOY:
        return None
    return "Skipped: CLOUD_DEPLOY is not true; scheduled emails are sent only when it is."


class EmailsConfig(AppConfig):
    name = "emails"
    verbose_name = "Onboarding emails"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from maintenance import registry

        from .scheduling import schedule_on_user_created
        from .sending import email_backlog, process_scheduled_emails

        post_save.connect(
            schedule_on_user_created,
            sender=get_user_model(),
            dispatch_uid="emails.schedule_on_user_created",
        )
        registry.register(
            registry.Task(
                name="scheduled_emails",
                func=process_scheduled_emails,
                description="Send due welcome and follow-up emails.",
                message=(
                    "Sent {sent} scheduled emails ({failed} failed, {cancelled} cancelled, "
                    "{remaining} remaining)"
                ),
                cron="0 * * * *",
                interval=timedelta(hours=1),
                run_at_startup=False,
                gate=cloud_only,
                options=frozenset({"limit", "max_seconds"}),
                backlog=email_backlog,
            )
        )
