from django.apps import AppConfig


class EmailsConfig(AppConfig):
    name = "emails"
    verbose_name = "Onboarding emails"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from emails import (
            checks,  # noqa: F401 - registers the system checks
            signals,  # noqa: F401 - schedules the onboarding series for new users
            tasks,  # noqa: F401 - declares the scheduled_emails task
            tracking,  # noqa: F401 - acts on the ESPs' delivery events (anymail's signal)
        )
