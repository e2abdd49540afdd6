"""Whether an onboarding email may still go to its user: checked when a runner holds the
claimed row, just before it is sent, not only when it was scheduled."""

from __future__ import annotations

from .models import ScheduledEmail
from .suppression import is_suppressed


def unreachable_reason(email: ScheduledEmail) -> str:
    """Why `email` must not be sent (its user opted out, was deactivated, has no address,
    or the address is on the suppression list), or "" when it may go."""
    user = email.user
    preference = getattr(user, "email_preference", None)
    if preference is not None and preference.onboarding_opt_out:
        return "unsubscribed"
    if not user.is_active:
        return "user deactivated"
    if not user.email:
        return "user has no email address"
    if is_suppressed(user.email):
        return "address suppressed"
    return ""
