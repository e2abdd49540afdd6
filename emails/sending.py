"""The `scheduled_emails` task: send what is due, once, over one SMTP connection per batch.

Each batch is claimed (see `claims.py`), then sent message by message over a single
connection, each outcome recorded as soon as it is known. When the SMTP server cannot be
reached, the claimed rows are backed off (the attempt counts) and the run stops instead of
hammering a server that is down; nothing is marked sent.
"""

from __future__ import annotations

import logging
import smtplib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.mail import get_connection
from django.db import DatabaseError
from django.utils import timezone

from . import claims
from .composing import compose
from .conf import email_settings
from .delivery import Courier, wrap
from .models import ScheduledEmail
from .outcomes import SentLog
from .reachability import unreachable_reason

logger = logging.getLogger(__name__)

# Errors after which the connection cannot carry the next message.
CONNECTION_ERRORS = (smtplib.SMTPServerDisconnected, OSError)


class SmtpUnavailable(Exception):
    pass


@dataclass
class Tally:
    sent: int = 0
    failed: int = 0
    cancelled: int = 0


def process_scheduled_emails(
    *, limit: int | None = None, max_seconds: float | None = None, now: datetime | None = None
) -> dict[str, int]:
    """Send due onboarding emails: at most `limit`, for at most about `max_seconds`.

    Returns `sent`, `failed` (attempts that failed this run, retried later or given up),
    `cancelled` (opted out, deactivated, too late) and `remaining` (due or in flight after
    the run). `now` pins the clock, for tests.
    """
    limit = limit or email_settings.SCHEDULED_EMAILS_LIMIT
    budget = max_seconds or email_settings.SCHEDULED_EMAILS_MAX_SECONDS
    deadline = time.monotonic() + budget
    tally = Tally(cancelled=cancel_unsendable(now or timezone.now()))
    claimed = 0
    while claimed < limit and time.monotonic() < deadline:
        batch = claims.claim(
            min(email_settings.SCHEDULED_EMAILS_BATCH_SIZE, limit - claimed), now or timezone.now()
        )
        if not batch:
            break
        claimed += len(batch)
        try:
            send_batch(batch, tally, deadline, now)
        except SmtpUnavailable:
            break
    return {
        "sent": tally.sent,
        "failed": tally.failed,
        "cancelled": tally.cancelled,
        "remaining": remaining(now),
    }


def cancel_unsendable(now: datetime) -> int:
    """Cancel pending emails that must never go out: opted-out, deactivated or address-less
    users, and emails overdue by more than the allowed lateness (a stale welcome)."""
    cutoff = now - timedelta(hours=email_settings.SCHEDULED_EMAILS_MAX_LATENESS_HOURS)
    unreachable = ScheduledEmail.objects.of_unreachable_users().cancel("user unreachable")
    stale = ScheduledEmail.objects.stale(cutoff).cancel(
        f"overdue by more than {email_settings.SCHEDULED_EMAILS_MAX_LATENESS_HOURS} h"
    )
    return unreachable + stale


def remaining(now: datetime | None) -> int:
    return ScheduledEmail.objects.due(now).count() + ScheduledEmail.objects.in_flight().count()


def send_batch(
    batch: list[ScheduledEmail], tally: Tally, deadline: float, now: datetime | None
) -> None:
    sendable = [email for email in batch if not _cancelled(email, tally)]
    if not sendable:
        return
    connection = get_connection(fail_silently=False)
    try:
        connection.open()
    except Exception as exc:
        _give_back(sendable, tally, f"SMTP unavailable: {_describe(exc)}", now)
        raise SmtpUnavailable from exc
    try:
        Round(connection, tally, now).run(sendable, deadline)
    finally:
        _close(connection)


class Round:
    """One batch over one connection, pipelined: while the server digests message N,
    message N+1 is composed and serialised; N's "sent" record then travels to the
    database while N+1's envelope goes out (see `delivery.py` and `outcomes.py`)."""

    def __init__(self, connection, tally: Tally, now: datetime | None) -> None:
        self.connection = connection
        self.courier = Courier(connection)
        self.log = SentLog()
        self.tally = tally
        self.now = now
        self.in_flight: ScheduledEmail | None = None

    def run(self, emails: list[ScheduledEmail], deadline: float) -> None:
        for index, email in enumerate(emails):
            if time.monotonic() >= deadline:
                self.settle()
                self.log.flush()
                claims.release(emails[index:])
                return
            broken = self.send(email)
            if broken:
                _reconnect_or_give_back(self.connection, emails[index + 1 :], self.tally, self.now)
        self.settle()
        self.log.flush()

    def send(self, email: ScheduledEmail) -> bool:
        """Start `email` once the previous one is settled. True when the connection broke."""
        try:
            parcel = wrap(compose(email))
        except Exception as exc:
            broken = self.settle()
            self.failed(email, exc)
            return broken
        if self.settle():
            self.failed(email, smtplib.SMTPServerDisconnected("connection lost"))
            return True
        try:
            self.courier.start(parcel, before_commit=self.log.flush)
        except DatabaseError:
            raise
        except Exception as exc:
            return self.failed(email, exc)
        self.in_flight = email
        return False

    def settle(self) -> bool:
        """Read the verdict on the message in flight and record it. True when broken."""
        email, self.in_flight = self.in_flight, None
        if email is None:
            return False
        try:
            self.courier.finish()
        except Exception as exc:
            return self.failed(email, exc)
        self.log.record(email, self.now or timezone.now())
        self.tally.sent += 1
        return False

    def failed(self, email: ScheduledEmail, exc: Exception) -> bool:
        self.log.flush()
        _record_failure(email, _describe(exc), self.tally, self.now)
        return isinstance(exc, CONNECTION_ERRORS)


def _cancelled(email: ScheduledEmail, tally: Tally) -> bool:
    reason = unreachable_reason(email)
    if reason:
        claims.cancel_claimed(email, reason)
        tally.cancelled += 1
    return bool(reason)


def _reconnect_or_give_back(connection, rest, tally: Tally, now: datetime | None) -> None:
    _close(connection)
    try:
        connection.open()
    except Exception as exc:
        _give_back(rest, tally, f"SMTP unavailable: {_describe(exc)}", now)
        raise SmtpUnavailable from exc


def _give_back(emails: list[ScheduledEmail], tally: Tally, error: str, now) -> None:
    for email in emails:
        _record_failure(email, error, tally, now)


def _record_failure(email: ScheduledEmail, error: str, tally: Tally, now) -> None:
    final = claims.mark_failed(email, error, now or timezone.now())
    tally.failed += 1
    logger.warning(
        "emails.send.failed id=%s type=%s attempt=%s final=%s error=%s",
        email.pk,
        email.email_type,
        email.attempts,
        final,
        error,
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def _close(connection) -> None:
    try:
        connection.close()
    except Exception:  # closing a dead connection must not hide the real outcome
        logger.debug("emails.smtp.close_failed", exc_info=True)
