"""Claiming due rows and recording what became of them.

A claim flips rows to `sending` with a lease (`claimed_until`, the database's now plus
SCHEDULED_EMAILS_LEASE_SECONDS, compared by the database too) and counts the attempt, in
one short transaction, so two runners never hold the same row and a runner killed
mid-batch leaves rows that become claimable again when the lease lapses, whatever the
clocks of the hosts say. On PostgreSQL
the rows are picked with `SELECT ... FOR UPDATE SKIP LOCKED`: concurrent claimers take
disjoint batches without waiting on each other. Databases without SKIP LOCKED (SQLite)
use a conditional `UPDATE` per row that only succeeds if the row is still as it was read.

Every transition after the claim is one `UPDATE` filtered on `status='sending'`, written
the moment the outcome is known, so a crash loses at most the in-flight message's record.
A run ended by its process (gunicorn's worker timeout, SIGTERM, Ctrl-C) hands its batch
back at once rather than holding it for the lease (`hand_back`).
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.db.models import Expression, F
from django.db.models.functions import Now

from emails.conf import email_settings
from emails.models import EmailStatus, ScheduledEmail
from maintenance.runs.reconnect import on_a_working_connection

MAX_ERROR_CHARS = 2000
MAX_BACKOFF = timedelta(days=1)


def claim(size: int, now: datetime) -> list[ScheduledEmail]:
    """Take up to `size` claimable rows for this runner, oldest first (due at `now`)."""
    until = Now() + timedelta(seconds=email_settings.SCHEDULED_EMAILS_LEASE_SECONDS)
    if connection.features.has_select_for_update_skip_locked:
        ids = _claim_skip_locked(size, now, until)
    else:
        ids = _claim_conditionally(size, now, until)
    if not ids:
        return []
    rows = ScheduledEmail.objects.filter(id__in=ids, status=EmailStatus.SENDING)
    return list(rows.select_related("user", "user__email_preference").order_by("scheduled_for"))


def _claim_skip_locked(size: int, now: datetime, until: Expression) -> list:
    with transaction.atomic():
        candidates = (
            ScheduledEmail.objects.claimable(now)
            .order_by("scheduled_for")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("id", flat=True)[:size]
        )
        ids = list(candidates)
        if ids:
            ScheduledEmail.objects.filter(id__in=ids).update(
                status=EmailStatus.SENDING, claimed_until=until, attempts=F("attempts") + 1
            )
    return ids


def _claim_conditionally(size: int, now: datetime, until: Expression) -> list:
    seen = ScheduledEmail.objects.claimable(now).order_by("scheduled_for")
    seen = seen.values_list("id", "status", "claimed_until")[:size]
    taken = []
    for pk, status, claimed_until in list(seen):
        won = ScheduledEmail.objects.filter(pk=pk, status=status, claimed_until=claimed_until)
        if won.update(status=EmailStatus.SENDING, claimed_until=until, attempts=F("attempts") + 1):
            taken.append(pk)
    return taken


def _held(email: ScheduledEmail):
    return ScheduledEmail.objects.filter(pk=email.pk, status=EmailStatus.SENDING)


def mark_failed(email: ScheduledEmail, error: str, now: datetime) -> bool:
    """Retry later with exponential backoff, or give up after the last attempt.
    Returns True when the email is now `failed` for good."""
    error = error[:MAX_ERROR_CHARS]
    if email.attempts >= email_settings.SCHEDULED_EMAILS_MAX_ATTEMPTS:
        _held(email).update(status=EmailStatus.FAILED, last_error=error, claimed_until=None)
        return True
    _held(email).update(
        status=EmailStatus.PENDING,
        scheduled_for=now + backoff(email.attempts),
        last_error=error,
        claimed_until=None,
    )
    return False


def fail_for_good(email: ScheduledEmail, error: str) -> None:
    """The email can never be delivered (a permanent refusal, an impossible address):
    `failed` now, without the retries left."""
    _held(email).update(
        status=EmailStatus.FAILED, last_error=error[:MAX_ERROR_CHARS], claimed_until=None
    )


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after `attempts` failed ones: base, 2x base, 4x base..."""
    base = timedelta(seconds=email_settings.SCHEDULED_EMAILS_BACKOFF_SECONDS)
    return min(base * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def cancel_claimed(email: ScheduledEmail, reason: str) -> None:
    _held(email).update(status=EmailStatus.CANCELLED, last_error=reason, claimed_until=None)


def release(emails: list[ScheduledEmail]) -> None:
    """Hand back claimed rows this run will not try (time budget spent): no attempt used."""
    ScheduledEmail.objects.filter(
        id__in=[email.pk for email in emails], status=EmailStatus.SENDING
    ).update(status=EmailStatus.PENDING, claimed_until=None, attempts=F("attempts") - 1)


def hand_back(emails: list[ScheduledEmail]) -> None:
    """When the process ends the run (SystemExit, KeyboardInterrupt, SIGTERM), release
    the rows of `emails` still `sending` at once, no attempt counted, on a new connection
    if the interrupted one is mid-query. A message in flight may then go out again: the
    one repeat a crash allows. Should even that fail, the lease frees them."""
    with suppress(DatabaseError):
        on_a_working_connection(lambda: release(emails))
