"""Whether an onboarding email may still go to its user: checked when a runner holds the
claimed row, just before it is sent, not only when it was scheduled."""

from __future__ import annotations

from collections.abc import Container

from emails.models import ScheduledEmail, normalize_address
from emails.suppression import is_suppressed


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
