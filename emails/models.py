"""Onboarding emails waiting to be sent (`scheduled_emails`), per-user opt-outs
(`email_preferences`), addresses never to be mailed again (`email_suppressions`) and the
delivery events ESPs report through their webhooks (`email_events`).

A row's life: `pending` until due, `sending` while a runner holds its lease, then `sent`,
`failed` (attempts exhausted, error kept) or `cancelled` (opted out, user gone, too late).
A `sending` row whose lease (`claimed_until`) has passed belonged to a runner that died;
it is claimable again.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Lower, Now
from django.utils import timezone


class EmailType(models.TextChoices):
    WELCOME = "welcome", "Welcome"
    DAY3 = "day3", "Day 3 follow-up"
    DAY7 = "day7", "Day 7 follow-up"


class EmailStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ScheduledEmailQuerySet(models.QuerySet):
    def due(self, now: datetime | None = None) -> ScheduledEmailQuerySet:
        return self.filter(status=EmailStatus.PENDING, scheduled_for__lte=now or timezone.now())

    def claimable(self, now: datetime) -> ScheduledEmailQuerySet:
        """Due rows (at `now`), plus rows whose runner died holding them: their claim's
        lease ran out on the database's clock, whatever this host's says."""
        pending = Q(status=EmailStatus.PENDING, scheduled_for__lte=now)
        abandoned = Q(status=EmailStatus.SENDING, claimed_until__lt=Now())
        return self.filter(pending | abandoned)

    def in_flight(self) -> ScheduledEmailQuerySet:
        return self.filter(status=EmailStatus.SENDING)

    def failed(self) -> ScheduledEmailQuerySet:
        return self.filter(status=EmailStatus.FAILED)

    def stale(self, cutoff: datetime) -> ScheduledEmailQuerySet:
        return self.filter(status=EmailStatus.PENDING, scheduled_for__lt=cutoff)

    def of_unreachable_users(self) -> ScheduledEmailQuerySet:
        """Pending rows whose user opted out, was deactivated, has no address or an
        address on the suppression list."""
        suppressed = EmailSuppression.objects.filter(address=Lower(OuterRef("user__email")))
        return self.filter(status=EmailStatus.PENDING).filter(
            Q(user__email_preference__onboarding_opt_out=True)
            | Q(user__is_active=False)
            | Q(user__email="")
            | Exists(suppressed)
        )

    def cancel(self, error: str = "") -> int:
        return self.update(status=EmailStatus.CANCELLED, claimed_until=None, last_error=error)

    def retry_now(self) -> int:
        """Put failed or cancelled rows back in the queue with a fresh attempt budget."""
        return self.filter(status__in=[EmailStatus.FAILED, EmailStatus.CANCELLED]).update(
            status=EmailStatus.PENDING,
            scheduled_for=timezone.now(),
            attempts=0,
            last_error="",
            claimed_until=None,
        )


class ScheduledEmail(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: `scheduled_email_once` (user, email_type) serves lookups by user.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="scheduled_emails",
        db_index=False,
    )
    email_type = models.CharField(max_length=16, choices=EmailType.choices)
    scheduled_for = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=EmailStatus.choices, default=EmailStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(
        null=True, blank=True, help_text="Lease of the runner sending it; lapsed = claimable."
    )

    objects = ScheduledEmailQuerySet.as_manager()

    class Meta:
        db_table = "scheduled_emails"
        ordering = ["scheduled_for"]
        constraints = [
            models.UniqueConstraint(fields=["user", "email_type"], name="scheduled_email_once"),
        ]
        indexes = [
            # Only the rows a runner or an operator looks for. Sent and cancelled rows, the
            # bulk of the table over time, stay out of it, and marking a row sent adds no
            # entry: one index fewer to maintain on the hot path.
            models.Index(
                fields=["status", "scheduled_for"],
                name="scheduled_emails_due_idx",
                condition=Q(
                    status__in=[EmailStatus.PENDING, EmailStatus.SENDING, EmailStatus.FAILED]
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email_type} for user {self.user_id} ({self.status})"


class EmailPreferenceQuerySet(models.QuerySet):
    def opt_out(self, user_id: int) -> bool:
        """Record the onboarding opt-out; True when it was not recorded before."""
        preference, _ = self.get_or_create(user_id=user_id)
        if preference.onboarding_opt_out:
            return False
        preference.onboarding_opt_out = True
        preference.opted_out_at = timezone.now()
        preference.save(update_fields=["onboarding_opt_out", "opted_out_at", "updated_at"])
        return True


class EmailPreference(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_preference"
    )
    onboarding_opt_out = models.BooleanField(default=False)
    opted_out_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EmailPreferenceQuerySet.as_manager()

    class Meta:
        db_table = "email_preferences"

    def __str__(self) -> str:
        state = "opted out" if self.onboarding_opt_out else "subscribed"
        return f"user {self.user_id}: onboarding {state}"


def normalize_address(address: str) -> str:
    """The form addresses are stored and compared in: trimmed and lower-case."""
    return address.strip().lower()


class EmailSuppressionQuerySet(models.QuerySet):
    def of_address(self, address: str) -> EmailSuppressionQuerySet:
        return self.filter(address=normalize_address(address))


class EmailSuppression(models.Model):
    """An address nothing is sent to again: it bounced for good, was rejected, complained,
    or an admin put it here. Stored lower-case, so lookups are case-insensitive."""

    address = models.CharField(max_length=254, unique=True)
    reason = models.CharField(max_length=500)
    event = models.CharField(
        max_length=32, blank=True, default="", help_text="ESP event type; empty when by hand."
    )
    esp = models.CharField(max_length=64, blank=True, default="", verbose_name="ESP")
    created_at = models.DateTimeField(default=timezone.now)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The admin who added it by hand.",
    )

    objects = EmailSuppressionQuerySet.as_manager()

    class Meta:
        db_table = "email_suppressions"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.address} ({self.event or 'by hand'})"

    def save(self, *args, **kwargs) -> None:
        self.address = normalize_address(self.address)
        super().save(*args, **kwargs)


class EmailEvent(models.Model):
    """One delivery event for one recipient, as an ESP reported it. Stored once: an ESP
    that retries its webhook sends the same (esp, event_id, recipient) again."""

    esp = models.CharField(max_length=64, verbose_name="ESP")
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=32)
    recipient = models.CharField(max_length=254, db_index=True)
    message_id = models.CharField(max_length=255, blank=True, default="")
    reject_reason = models.CharField(max_length=32, blank=True, default="")
    description = models.TextField(blank=True, default="")
    mta_response = models.TextField(blank=True, default="")
    occurred_at = models.DateTimeField(null=True, blank=True, help_text="The ESP's time.")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=255, blank=True, default="", help_text="What it changed.")
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "email_events"
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["esp", "event_id", "recipient"], name="email_event_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.esp} {self.event_type} for {self.recipient}"


class SendRate(models.Model):
    """The pace `EMAIL_SEND_RATE` sets for every runner on every host: one row holding the
    next free send slot (see `emails/outbox/rate.py`)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    next_slot = models.FloatField(
        default=0.0, help_text="Unix time (database clock) from which the next send may go."
    )

    class Meta:
        db_table = "email_send_rate"

    def __str__(self) -> str:
        return f"next send slot at {self.next_slot:.3f}"
