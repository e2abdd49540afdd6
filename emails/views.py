"""The public unsubscribe page (RFC 8058).

GET (the link in the email body, but also every mail security scanner that fetches the
links of a message) only shows a confirmation page with a button: nothing changes. POST
(that button, or a mail client's one-click `List-Unsubscribe=One-Click`, which carries no
CSRF token) records the opt-out. The signed token is the authentication.
"""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from maintenance.events import UNSUBSCRIBE_FAILED, log_event

from .unsubscribe import BadToken, opt_out, read_token

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 300


@csrf_exempt  # RFC 8058: mail providers POST `List-Unsubscribe=One-Click` with no CSRF token
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        user_id = read_token(token)
    except BadToken as exc:
        return _page(request, "Invalid unsubscribe link", str(exc), status=400)
    if request.method != "POST":
        return render(request, "emails/unsubscribe_confirm.html", {"action": request.path})
    try:
        if get_user_model().objects.filter(pk=user_id).exists():
            opt_out(user_id)
    except DatabaseError as exc:
        log_event(logger, logging.ERROR, UNSUBSCRIBE_FAILED, error=type(exc).__name__)
        response = _page(
            request,
            "Please try again in a few minutes",
            "We could not record your choice just now. Nothing is lost: use the same link "
            "again a little later.",
            status=503,
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return _page(
        request,
        "You are unsubscribed",
        "You will receive no more Plugged.in onboarding emails.",
    )


def _page(request: HttpRequest, title: str, detail: str, status: int = 200) -> HttpResponse:
    context = {"title": title, "detail": detail}
    return render(request, "emails/unsubscribed.html", context, status=status)
