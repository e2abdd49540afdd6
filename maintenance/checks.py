"""System checks for a maintenance deployment (`manage.py check`, `check --deploy`).

Each check is a module-level constant named by its id, with a message that states the
fact and a hint that gives the fix. Registered from `MaintenanceConfig.ready()`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register

MIN_CRON_SECRET_LENGTH = 32
CONSOLE_EMAIL_BACKENDS = (
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
)

W001 = Warning(
    "CRON_SECRET is not set, so the task endpoints answer 503 and external cron cannot run "
    "the tasks.",
    hint="Set CRON_SECRET to at least 32 random characters, e.g. the output of "
    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`.",
    id="maintenance.W001",
)
W002 = Warning(
    f"CRON_SECRET is shorter than {MIN_CRON_SECRET_LENGTH} characters.",
    hint="Use at least 32 random characters "
    "(`python -c 'import secrets; print(secrets.token_urlsafe(32))'`) and update the cron "
    "callers' Authorization header to match.",
    id="maintenance.W002",
)
W003 = Warning(
    "CLOUD_DEPLOY is true but email goes to the console backend, so scheduled emails are "
    "marked sent without reaching anyone.",
    hint="Set EMAIL_URL to your SMTP server, e.g. smtp://user:pass@smtp.example.com:587/?tls=True.",
    id="maintenance.W003",
)
W004 = Warning(
    "DEBUG is true with CLOUD_DEPLOY: task endpoints run on GET without a token and errors "
    "show tracebacks.",
    hint="Set DEBUG=false in production.",
    id="maintenance.W004",
)
W005 = Warning(
    "The installed crontab entries for this project are out of date with CRONJOBS, so "
    "cron runs old schedules or fails with 'No job with hash ... found'.",
    hint="Run `python manage.py crontab add --verbosity 0` as the user whose crontab runs "
    "the tasks (it replaces this project's entries; at the default verbosity django-crontab "
    "stops with 'No job with hash' while listing the stale ones).",
    id="maintenance.W005",
)


@register(Tags.security, deploy=True)
def check_cron_secret_set(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    return [] if getattr(settings, "CRON_SECRET", None) else [W001]


@register(Tags.security)
def check_cron_secret_strength(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    secret = getattr(settings, "CRON_SECRET", None)
    return [W002] if secret and len(secret) < MIN_CRON_SECRET_LENGTH else []


@register("maintenance")
def check_cloud_email_backend(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if getattr(settings, "CLOUD_DEPLOY", False) and settings.EMAIL_BACKEND in (
        CONSOLE_EMAIL_BACKENDS
    ):
        return [W003]
    return []


@register(Tags.security)
def check_debug_in_cloud(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    return [W004] if settings.DEBUG and getattr(settings, "CLOUD_DEPLOY", False) else []


@register("maintenance")
def check_crontab_in_sync(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Only when CRONJOBS is defined and some entries for this project are installed: an
    installation that triggers tasks by other means has nothing to keep in sync."""
    if not getattr(settings, "CRONJOBS", None):
        return []
    from .crontab_sync import crontab_drift

    drift = crontab_drift()
    return [W005] if drift and drift.installed and not drift.in_sync else []
