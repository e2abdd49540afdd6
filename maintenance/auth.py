"""The one Bearer-token check in front of every token-checked endpoint.

It fails closed (no secret configured means the endpoint is shut), compares in constant
time, and touches nothing but the request headers and settings, so a rejected caller
never costs a database query. The task and status endpoints take `CRON_SECRET`;
`/metrics` takes `METRICS_TOKEN`, else `CRON_SECRET` (`METRICS_SECRETS`).
"""

from __future__ import annotations

import enum
import hmac

from django.http import HttpRequest

from maintenance.conf import maintenance_settings

TASK_SECRETS = ("CRON_SECRET",)
METRICS_SECRETS = ("METRICS_TOKEN", "CRON_SECRET")


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    NO_SECRET = "no_secret"  # noqa: S105 - no secret configured: endpoint closed
    NO_HEADER = "no_header"  # no Authorization header at all
    DENIED = "denied"  # header malformed or token wrong


def bearer_token(header: str) -> str | None:
    """The token of an RFC 6750 `Bearer <token>` header, or None when malformed."""
    scheme, sep, token = header.partition(" ")
    if not sep or scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return None
    return token


def configured_secret(names: tuple[str, ...]) -> str | None:
    """The first of the settings `names` that is set, or None when none is."""
    return next((value for name in names if (value := getattr(maintenance_settings, name))), None)


def check_bearer(request: HttpRequest, secrets: tuple[str, ...] = TASK_SECRETS) -> Verdict:
    """The request's `Authorization` against the first of the settings `secrets` set."""
    secret = configured_secret(secrets)
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
