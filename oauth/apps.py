from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "oauth"
    verbose_name = "OAuth state"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from oauth import (
            checks,  # noqa: F401 - registers the system checks
            tasks,  # noqa: F401 - declares the cleanup tasks
        )
