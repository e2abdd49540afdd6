"""Users and due onboarding emails for the email tests, created in bulk."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from emails.models import EmailType, ScheduledEmail


def make_users(count: int, prefix: str = "user") -> list:
    User = get_user_model()
    User.objects.bulk_create(
        User(username=f"{prefix}{i}", email=f"{prefix}{i}@example.test", first_name=f"Ann{i}")
        for i in range(count)
    )
    return list(User.objects.filter(username__startswith=prefix).order_by("pk"))


def make_due(
    count: int, *, prefix: str = "user", at: datetime | None = None
) -> list[ScheduledEmail]:
    """`count` users, each with one welcome email due a minute before `at` (default now)."""
    due = (at or timezone.now()) - timedelta(minutes=1)
    users = make_users(count, prefix)
    ScheduledEmail.objects.bulk_create(
        ScheduledEmail(user=user, email_type=EmailType.WELCOME, scheduled_for=due) for user in users
    )
    return list(ScheduledEmail.objects.filter(user__in=users))


def statuses() -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in ScheduledEmail.objects.values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts
