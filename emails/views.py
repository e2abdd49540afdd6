"""The public one-click unsubscribe page."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .unsubscribe import BadToken, opt_out, read_token


@csrf_exempt  # RFC 8058: mail providers POST `List-Unsubscribe=One-Click` with no CSRF token
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET (the link in the body) and POST (the RFC 8058 one-click button) both opt out."""
    try:
        user_id = read_token(token)
    except BadToken as exc:
        return _page(request, "Invalid unsubscribe link", str(exc), status=400)
    if get_user_model().objects.filter(pk=user_id).exists():
        opt_out(user_id)
    return _page(
        request,
        "You are unsubscribed",
        "You will receive no more Plugged.in onboarding emails.",
    )


def _page(request: HttpRequest, title: str, detail: str, status: int = 200) -> HttpResponse:
    context = {"title": title, "detail": detail}
    return render(request, "emails/unsubscribed.html", context, status=status)
