from datetime import timedelta

from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "oauth"
    verbose_name = "OAuth state"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from maintenance import registry

        from . import cleanup

        for name, func, rows, cron, interval, backlog in [
            (
                "pkce_cleanup",
                cleanup.cleanup_pkce_states,
                "PKCE states",
                "*/10 * * * *",
                timedelta(minutes=10),
                cleanup.pkce_backlog,
            ),
            (
                "oauth_session_cleanup",
                cleanup.cleanup_oauth_sessions,
                "OAuth sessions",
                "0 * * * *",
                timedelta(hours=1),
                cleanup.oauth_session_backlog,
            ),
        ]:
            registry.register(
                registry.Task(
                    name=name,
                    func=func,
                    description=f"Delete expired {rows}.",
                    message=f"Deleted {{deletedCount}} expired {rows}",
                    dry_run_message=f"Dry run: {{expiredCount}} expired {rows} would be deleted",
                    cron=cron,
                    interval=interval,
                    run_at_startup=True,
                    options=frozenset({"dry_run"}),
                    backlog=backlog,
                )
            )
