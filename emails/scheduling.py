"""Scheduling the onboarding series when a user is created."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from emails.conf import email_settings
from emails.models import EmailType, ScheduledEmail

SERIES: dict[str, timedelta] = {
    EmailType.WELCOME: timedelta(0),
    EmailType.DAY3: timedelta(days=3),
    EmailType.DAY7: timedelta(days=7),
}


def onboarding_enabled() -> bool:
    return bool(email_settings.CLOUD_DEPLOY) and bool(email_settings.ENABLE_WELCOME_EMAILS)


def schedule_onboarding(user) -> int:
    """Schedule welcome, day3 and day7 for `user`. Idempotent: the (user, email_type)
    constraint makes a second call, or a concurrent one, add nothing. Returns how many
    rows exist for the user's series afterwards."""
    start = timezone.now()
    rows = [
        ScheduledEmail(user=user, email_type=kind, scheduled_for=start + delay)
        for kind, delay in SERIES.items()
    ]
    ScheduledEmail.objects.bulk_create(rows, ignore_conflicts=True)
    return ScheduledEmail.objects.filter(user=user, email_type__in=list(SERIES)).count()
