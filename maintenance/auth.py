"""The one Bearer-token check in front of every task endpoint.

It fails closed (no CRON_SECRET means the endpoints are shut), compares in constant time,
and touches nothing but the request headers and settings, so a rejected caller never
costs a database query.
"""

from __future__ import annotations

import enum
import hmac

from django.http import HttpRequest

from .conf import maintenance_settings


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    NO_SECRET = "no_secret"  # noqa: S105 - CRON_SECRET is unset: endpoints closed
    NO_HEADER = "no_header"  # no Authorization header at all
    DENIED = "denied"  # header malformed or token wrong


def bearer_token(header: str) -> str | None:
    """The token of an RFC 6750 `Bearer <token>` header, or None when malformed."""
    scheme, sep, token = header.partition(" ")
    if not sep or scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return None
    return token


def check_bearer(request: HttpRequest) -> Verdict:
    secret = maintenance_settings.CRON_SECRET
    header = request.META.get("HTTP_AUTHORIZATION")
    if not secret:
        return Verdict.NO_SECRET
    if header is None:
        return Verdict.NO_HEADER
    token = bearer_token(header)
    if token is None:
        return Verdict.DENIED
    given = token.encode("utf-8", "surrogateescape")
    if hmac.compare_digest(given, secret.encode("utf-8")):
        return Verdict.ALLOWED
    return Verdict.DENIED
