from django.apps import AppConfig


class MaintenanceConfig(AppConfig):
    name = "maintenance"
    verbose_name = "Maintenance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from maintenance import checks  # noqa: F401 - registers the system checks
        from maintenance.observe import observers

        observers.connect()  # heartbeats and Sentry check-ins hear of every run
