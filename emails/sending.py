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

from django.conf import settings
from django.core.mail import get_connection
from django.db import DatabaseError
from django.utils import timezone

from . import claims
from .composing import compose
from .delivery import deliver
from .models import ScheduledEmail
from .outcomes import SentLog

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
    limit = limit or settings.SCHEDULED_EMAILS_LIMIT
    budget = max_seconds or settings.SCHEDULED_EMAILS_MAX_SECONDS
    deadline = time.monotonic() + budget
    tally = Tally(cancelled=cancel_unsendable(now or timezone.now()))
    claimed = 0
    while claimed < limit and time.monotonic() < deadline:
        batch = claims.claim(
            min(settings.SCHEDULED_EMAILS_BATCH_SIZE, limit - claimed), now or timezone.now()
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
    cutoff = now - timedelta(hours=settings.SCHEDULED_EMAILS_MAX_LATENESS_HOURS)
    unreachable = ScheduledEmail.objects.of_unreachable_users().cancel("user unreachable")
    stale = ScheduledEmail.objects.stale(cutoff).cancel(
        f"overdue by more than {settings.SCHEDULED_EMAILS_MAX_LATENESS_HOURS} h"
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
    log = SentLog()
    try:
        for index, email in enumerate(sendable):
            if time.monotonic() >= deadline:
                log.flush()
                claims.release(sendable[index:])
                return
            if not _deliver(connection, email, tally, now, log):
                _reconnect_or_give_back(connection, sendable[index + 1 :], tally, now)
        log.flush()
    finally:
        _close(connection)


def _cancelled(email: ScheduledEmail, tally: Tally) -> bool:
    reason = unreachable_reason(email)
    if reason:
        claims.cancel_claimed(email, reason)
        tally.cancelled += 1
    return bool(reason)


def unreachable_reason(email: ScheduledEmail) -> str:
    user = email.user
    preference = getattr(user, "email_preference", None)
    if preference is not None and preference.onboarding_opt_out:
        return "unsubscribed"
    if not user.is_active:
        return "user deactivated"
    if not user.email:
        return "user has no email address"
    return ""


def _deliver(connection, email: ScheduledEmail, tally: Tally, now, log: SentLog) -> bool:
    """Send one email and record the outcome. False when the connection broke."""
    message = compose(email)
    try:
        deliver(connection, message, before_commit=log.flush)
    except DatabaseError:
        raise
    except Exception as exc:
        log.flush()
        _record_failure(email, _describe(exc), tally, now)
        return not isinstance(exc, CONNECTION_ERRORS)
    log.record(email, now or timezone.now())
    tally.sent += 1
    return True


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


def email_backlog() -> dict[str, int]:
    return {
        "dueEmails": ScheduledEmail.objects.due().count(),
        "failedEmails": ScheduledEmail.objects.failed().count(),
    }
