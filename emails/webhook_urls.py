"""Anymail's own webhook views, mounted at `/anymail/` (`anymail:<esp>_tracking_webhook`...),
closed until `ANYMAIL_WEBHOOK_SECRET` is set.

Anymail authenticates each post with HTTP basic auth against that secret, but accepts
anyone when it is unset (with a warning). Here an unset secret closes every webhook with
503, as an unset `CRON_SECRET` closes the task endpoints: nobody can suppress addresses or
opt users out by posting made-up events, and the ESP keeps retrying until it is set.

A post that passes the secret but cannot be read (not JSON, `[1, 2]`, a list where the
ESP sends a string, JSON nested too deep to parse) makes anymail's parsing or our
recording raise; left alone that is a 500, and the ESP retries the same unreadable body
for days. Those errors answer 400, which ESPs take as final. Each post's events are
recorded in one transaction, so a post that fails on its second event changes nothing
either. A database error is not the post's fault: it stays a 500 and the ESP retries.
"""

from __future__ import annotations

import functools
import logging

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailAPIError
from anymail.utils import get_anymail_setting
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.urls import URLPattern

from maintenance.logs.control_chars import escape_controls
from maintenance.logs.log_events import EMAIL_WEBHOOK_UNREADABLE, log_event

logger = logging.getLogger(__name__)

CLOSED = "Webhooks closed: ANYMAIL_WEBHOOK_SECRET is not set.\n"
# What parsing a malformed body raises (json.JSONDecodeError and UnicodeDecodeError are
# ValueErrors; anymail's AnymailInvalidAddress too). DatabaseError is none of these.
UNREADABLE = (ValueError, TypeError, LookupError, AttributeError, RecursionError)
ERROR_TEXT_LIMIT = 200


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


def unreadable_is_400(view):
    """Answer 400 to a post anymail cannot read, with nothing recorded (see above)."""
    esp = getattr(getattr(view, "view_class", None), "esp_name", "ESP")

    @functools.wraps(view)
    def answered(request, *args, **kwargs):
        try:
            with transaction.atomic():
                return view(request, *args, **kwargs)
        except (*UNREADABLE, AnymailAPIError) as exc:
            if not is_unreadable(exc):
                raise
            error = escape_controls(f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_LIMIT])
            log_event(logger, logging.WARNING, EMAIL_WEBHOOK_UNREADABLE, esp=esp, error=error)
            body = {"success": False, "error": f"unreadable {esp} webhook payload"}
            return JsonResponse(body, status=400)

    return answered


def is_unreadable(exc: BaseException) -> bool:
    """The SES view wraps its JSON errors in AnymailAPIError, which also reports real API
    failures (boto): only one caused by a parse error is the post's fault."""
    if isinstance(exc, AnymailAPIError):
        return isinstance(exc.__cause__, UNREADABLE)
    return isinstance(exc, UNREADABLE)


def guard(view):
    return closed_without_secret(unreadable_is_400(view))


app_name = anymail_urls.app_name
urlpatterns = [
    URLPattern(pattern.pattern, guard(pattern.callback), pattern.default_args, pattern.name)
    for pattern in anymail_urls.urlpatterns
]
