"""Signed one-click unsubscribe links (RFC 8058) and the opt-out they record.

The token is the user id signed with SECRET_KEY under a salt used for nothing else, so a
token minted for another purpose never unsubscribes anyone. It does not expire: a link in
an old email must keep working.
"""

from __future__ import annotations

import functools

from django.core import signing
from django.db import transaction
from django.urls import get_script_prefix, get_urlconf, reverse

from emails.conf import email_settings
from emails.models import EmailPreference, ScheduledEmail

SALT = "emails.unsubscribe.onboarding"


class BadToken(ValueError):
    pass


def make_token(user_id: int) -> str:
    return signing.dumps(user_id, salt=SALT)


def read_token(token: str) -> int:
    """The user id in `token`; BadToken when it was not signed by us for this purpose."""
    try:
        user_id = signing.loads(token, salt=SALT)
    except signing.BadSignature as exc:
        raise BadToken("This unsubscribe link is invalid or has been altered.") from exc
    if not isinstance(user_id, int):
        raise BadToken("This unsubscribe link is invalid or has been altered.")
    return user_id


def unsubscribe_url(user_id: int) -> str:
    prefix = _link_prefix(get_urlconf(), get_script_prefix())
    return f"{email_settings.APP_URL}{prefix}{make_token(user_id)}"


@functools.lru_cache(maxsize=8)
def _link_prefix(urlconf: str | None, script_prefix: str) -> str:
    """The path before the token. `reverse` costs a third of composing an email, and the
    prefix only changes with the URL configuration, so it is resolved once per config."""
    path = reverse("emails:unsubscribe", kwargs={"token": "T"}, urlconf=urlconf)
    return path.removesuffix("T")


def opt_out(user_id: int) -> int:
    """Record the opt-out and cancel the user's pending onboarding emails (how many)."""
    with transaction.atomic():
        EmailPreference.objects.opt_out(user_id)
        return ScheduledEmail.objects.filter(user_id=user_id, status="pending").cancel(
            "unsubscribed"
        )
