"""Whether a claimed email may still go to its user, checked when a runner holds the row,
just before it is sent, not only when it was scheduled.

Two verdicts, two outcomes: an *unreachable* user (opted out, deactivated, no address,
address suppressed) cancels the email; an *undeliverable* address (one no retry can ever
deliver to) fails it at once, with the reason.
"""

from __future__ import annotations

from collections.abc import Container

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from emails.models import ScheduledEmail, normalize_address
from emails.outbox.suppression import is_suppressed


def unreachable_reason(email: ScheduledEmail, suppressed: Container[str] | None = None) -> str:
    """Why `email` must not be sent (its user opted out, was deactivated, has no address,
    or the address is on the suppression list), or "" when it may go. `suppressed`, the
    suppressed addresses among a batch's (`suppressed_among`), saves a query per email."""
    user = email.user
    preference = getattr(user, "email_preference", None)
    if preference is not None and preference.onboarding_opt_out:
        return "unsubscribed"
    if not user.is_active:
        return "user deactivated"
    if not user.email:
        return "user has no email address"
    if suppressed is None and is_suppressed(user.email):
        return "address suppressed"
    if suppressed is not None and normalize_address(user.email) in suppressed:
        return "address suppressed"
    return ""


def undeliverable_reason(address: str) -> str:
    """Why `address` can never receive mail (a line break in it, a list of addresses,
    invalid syntax), or "" when it looks like one mailbox."""
    if "\r" in address or "\n" in address:
        return "undeliverable address: it contains a line break"
    if "," in address or ";" in address:
        return "undeliverable address: a list of addresses, not one mailbox"
    try:
        validate_email(address)
    except ValidationError:
        return "undeliverable address: invalid syntax"
    return ""
