"""The public unsubscribe page (RFC 8058).

GET (the link in the email body, but also every mail security scanner that fetches the
links of a message) only shows a confirmation page with a button: nothing changes. POST
(that button, or a mail client's one-click `List-Unsubscribe=One-Click`, which carries no
CSRF token) records the opt-out. The signed token is the authentication. While the
database is down both answer a 503 page asking to come back later, not a bare 500.
"""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from emails.unsubscribe import BadToken, opt_out, read_token
from maintenance.logs.log_events import UNSUBSCRIBE_FAILED, log_event

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 300
DONE = ("You are unsubscribed", "You will receive no more Plugged.in onboarding emails.")


@csrf_exempt  # RFC 8058: mail providers POST `List-Unsubscribe=One-Click` with no CSRF token
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        user_id = read_token(token)
    except BadToken as exc:
        return _page(request, "Invalid unsubscribe link", str(exc), status=400)
    try:
        if request.method == "POST":
            if get_user_model().objects.filter(pk=user_id).exists():
                opt_out(user_id)
            return _page(request, *DONE)
        if not _still_subscribed(user_id):
            return _page(request, *DONE)
    except DatabaseError as exc:
        return _unavailable(request, exc)
    return render(request, "emails/unsubscribe_confirm.html", {"action": request.path})


def _still_subscribed(user_id: int) -> bool:
    """Whether there is anything to confirm: the user exists and has not opted out."""
    users = get_user_model().objects.filter(pk=user_id)
    return users.exclude(email_preference__onboarding_opt_out=True).exists()


def _unavailable(request: HttpRequest, exc: DatabaseError) -> HttpResponse:
    log_event(logger, logging.ERROR, UNSUBSCRIBE_FAILED, error=type(exc).__name__)
    response = _page(
        request,
        "Please try again in a few minutes",
        "We could not record your choice just now. Nothing is lost: use the same link again "
        "a little later.",
        status=503,
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _page(request: HttpRequest, title: str, detail: str, status: int = 200) -> HttpResponse:
    context = {"title": title, "detail": detail}
    return render(request, "emails/unsubscribed.html", context, status=status)
