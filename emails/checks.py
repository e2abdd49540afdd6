"""System checks for onboarding emails (registered from `EmailsConfig.ready()`)."""

from __future__ import annotations

import ipaddress
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from emails.conf import email_settings
from maintenance.checks import SETTINGS, setting_errors

# Django's backends that accept every message and deliver none of them.
UNDELIVERING_EMAIL_BACKENDS = (
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
)
LOCAL_HOST_NAMES = ("localhost", "localhost.localdomain")

W003 = "maintenance.W003"
W006 = "maintenance.W006"
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
    backend = settings.EMAIL_BACKEND
    if not (email_settings.CLOUD_DEPLOY and backend in UNDELIVERING_EMAIL_BACKENDS):
        return []
    return [
        Warning(
            f"CLOUD_DEPLOY is true but EMAIL_BACKEND is {backend}, which delivers nothing, "
            "so scheduled emails are marked sent without reaching anyone.",
            hint="Set EMAIL_URL to your SMTP relay (e.g. "
            "smtp://user:pass@smtp.example.com:587/?tls=True) or EMAIL_BACKEND to an anymail "
            "backend (e.g. anymail.backends.postmark.EmailBackend).",
            id=W003,
        )
    ]


@register("emails", deploy=True)
def check_cloud_app_url(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Only with CLOUD_DEPLOY: a local APP_URL is right for development, where nobody
    outside this machine follows the links."""
    url = email_settings.APP_URL
    if not (email_settings.CLOUD_DEPLOY and isinstance(url, str) and loopback_url(url)):
        return []
    return [
        Warning(
            f"CLOUD_DEPLOY is true but APP_URL is {url}, on this machine: every unsubscribe "
            "link in a sent email points at the reader's own computer.",
            hint="Set APP_URL to the public https URL users reach, e.g. https://app.example.com.",
            id=W006,
        )
    ]


def loopback_url(url: str) -> bool:
    """Whether `url`'s host is localhost (or under .localhost), a loopback address or the
    unspecified address (0.0.0.0, ::), none of which a reader elsewhere can reach."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return False  # E001 reports a URL that cannot be parsed
    if host in LOCAL_HOST_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return any(a.is_loopback or a.is_unspecified for a in (address, mapped) if a)


@register(Tags.security)
def check_debug_in_cloud(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    return [W004] if settings.DEBUG and email_settings.CLOUD_DEPLOY else []
