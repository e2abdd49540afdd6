"""Whether an onboarding email may still go to its user: checked when a runner holds the
claimed row, just before it is sent, not only when it was scheduled."""

from __future__ import annotations

from collections.abc import Collection

from .models import ScheduledEmail, normalize_address
from .suppression import is_suppressed


def unreachable_reason(email: ScheduledEmail, suppressed: Collection[str] | None = None) -> str:
    """Why `email` must not be sent (its user opted out, was deactivated, has no address,
    or the address is on the suppression list), or "" when it may go.

    The suppression list is read now (one query), unless the caller passes `suppressed`,
    the suppressed addresses among its batch read just before (`suppressed_among`), to
    check a whole batch with one query.
    """
    user = email.user
    preference = getattr(user, "email_preference", None)
    if preference is not None and preference.onboarding_opt_out:
        return "unsubscribed"
    if not user.is_active:
        return "user deactivated"
    if not user.email:
        return "user has no email address"
    if suppressed is None:
        if is_suppressed(user.email):
            return "address suppressed"
    elif normalize_address(user.email) in suppressed:
        return "address suppressed"
    return ""
