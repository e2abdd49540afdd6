from datetime import timedelta

from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "oauth"
    verbose_name = "OAuth state"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from maintenance import registry

        from .cleanup import cleanup_pkce_states, pkce_backlog

        registry.register(
            registry.Task(
                name="pkce_cleanup",
                func=cleanup_pkce_states,
                description="Delete expired OAuth PKCE states.",
                message="Deleted {deletedCount} expired PKCE states",
                cron="*/10 * * * *",
                interval=timedelta(minutes=10),
                run_at_startup=True,
                options=frozenset({"dry_run"}),
                backlog=pkce_backlog,
            )
        )
