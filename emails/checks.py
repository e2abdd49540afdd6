"""System checks for onboarding emails (registered from `EmailsConfig.ready()`)."""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from emails.conf import email_settings
from maintenance.checks import SETTINGS, setting_errors

CONSOLE_EMAIL_BACKENDS = (
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
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


E003 = "maintenance.E003"


@register("emails", SETTINGS)
def check_email_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    return setting_errors([email_settings]) + sender_errors()


def sender_errors() -> list[Error]:
    """E003 when DEFAULT_FROM_EMAIL is no address a mail server takes: every email would fail."""
    sender = settings.DEFAULT_FROM_EMAIL
    try:
        if not isinstance(sender, str) or "\n" in sender or "\r" in sender:
            raise ValidationError("not one line")
        validate_email(parseaddr(sender)[1])
    except ValidationError:
        return [
            Error(
                f"DEFAULT_FROM_EMAIL is {sender!r}, not an email address.",
                hint="Set DEFAULT_FROM_EMAIL to an address, e.g. "
                "'Plugged.in <noreply@example.com>' or noreply@example.com.",
                id=E003,
            )
        ]
    return []


@register("emails")
def check_cloud_email_backend(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if email_settings.CLOUD_DEPLOY and settings.EMAIL_BACKEND in CONSOLE_EMAIL_BACKENDS:
        return [W003]
    return []


@register(Tags.security)
def check_debug_in_cloud(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    return [W004] if settings.DEBUG and email_settings.CLOUD_DEPLOY else []
