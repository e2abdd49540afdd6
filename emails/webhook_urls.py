"""Anymail's own webhook views, mounted at `/anymail/` (`anymail:<esp>_tracking_webhook`...),
closed until `ANYMAIL_WEBHOOK_SECRET` is set.

Anymail authenticates each post with HTTP basic auth against that secret, but accepts
anyone when it is unset (with a warning). Here an unset secret closes every webhook with
503, as an unset `CRON_SECRET` closes the task endpoints: nobody can suppress addresses or
opt users out by posting made-up events, and the ESP keeps retrying until it is set.
"""

from __future__ import annotations

import functools

from anymail import urls as anymail_urls
from anymail.utils import get_anymail_setting
from django.http import HttpResponse
from django.urls import URLPattern

CLOSED = "Webhooks closed: ANYMAIL_WEBHOOK_SECRET is not set.\n"


def webhook_secret_configured() -> bool:
    """Whether anymail has a basic-auth secret (`ANYMAIL_WEBHOOK_SECRET` or
    `ANYMAIL["WEBHOOK_SECRET"]`, one string or a list of them)."""
    secret = get_anymail_setting("webhook_secret", default=None)
    if isinstance(secret, str):
        return bool(secret.strip())
    return bool(secret) and all(isinstance(s, str) and s.strip() for s in secret)


def closed_without_secret(view):
    @functools.wraps(view)
    def gated(request, *args, **kwargs):
        if not webhook_secret_configured():
            return HttpResponse(CLOSED, status=503, content_type="text/plain")
        return view(request, *args, **kwargs)

    return gated


app_name = anymail_urls.app_name
urlpatterns = [
    URLPattern(
        pattern.pattern, closed_without_secret(pattern.callback), pattern.default_args, pattern.name
    )
    for pattern in anymail_urls.urlpatterns
]
