"""`BatchSender`: sends claimed batches of emails, each over one SMTP connection, and
keeps the run's clock and counts.

Within a batch the messages are pipelined: while the server digests message N, message
N+1 is composed and serialised; N's "sent" record then travels to the database while
N+1's envelope goes out (see `smtp_pipeline.py` and `sent_status.py`).
"""

from __future__ import annotations

import logging
import smtplib
import time
from dataclasses import dataclass
from datetime import datetime

from django.core.mail import get_connection
from django.db import DatabaseError
from django.utils import timezone

from maintenance.events import EMAIL_SEND_FAILED, SMTP_CLOSE_FAILED, log_event

from . import claims
from .composing import compose
from .models import ScheduledEmail
from .reachability import unreachable_reason
from .sent_status import SentStatusWriter
from .smtp_pipeline import SmtpPipeline, prepare

logger = logging.getLogger("emails.sending")

# Errors after which the connection cannot carry the next message.
CONNECTION_ERRORS = (smtplib.SMTPServerDisconnected, OSError)


class SmtpUnavailable(Exception):
    """The SMTP server could not be reached; the batch's emails were given back."""


@dataclass
class SendCounts:
    sent: int = 0
    failed: int = 0
    cancelled: int = 0


class BatchSender:
    """Sends batches until told to stop; `now` pins the clock (tests), else it is live."""

    def __init__(self, *, deadline: float, now: datetime | None = None) -> None:
        self.deadline = deadline
        self.counts = SendCounts()
        self._pinned_now = now
        self._writer = SentStatusWriter()
        self._pipeline: SmtpPipeline | None = None
        self._in_flight: ScheduledEmail | None = None

    def now(self) -> datetime:
        return self._pinned_now or timezone.now()

    def send(self, batch: list[ScheduledEmail]) -> None:
        """Send `batch` over one connection. Raises `SmtpUnavailable` when the server
        cannot be reached (the unsent emails are then backed off)."""
        sendable = [email for email in batch if not self._cancel_if_unreachable(email)]
        if not sendable:
            return
        backend = get_connection(fail_silently=False)
        try:
            backend.open()
        except Exception as exc:
            self._give_back(sendable, exc)
            raise SmtpUnavailable from exc
        self._pipeline = SmtpPipeline(backend)
        try:
            self._send_over(backend, sendable)
        finally:
            self._pipeline = None
            _close(backend)

    def _send_over(self, backend, emails: list[ScheduledEmail]) -> None:
        for index, email in enumerate(emails):
            if time.monotonic() >= self.deadline:
                self._settle()
                self._writer.confirm()
                claims.release(emails[index:])
                return
            if self._start(email):
                self._reconnect_or_give_back(backend, emails[index + 1 :])
        self._settle()
        self._writer.confirm()

    def _start(self, email: ScheduledEmail) -> bool:
        """Start `email` once the previous one is settled. True when the connection broke."""
        try:
            prepared = prepare(compose(email))
        except Exception as exc:
            broken = self._settle()
            self._failed(email, exc)
            return broken
        if self._settle():
            self._failed(email, smtplib.SMTPServerDisconnected("connection lost"))
            return True
        try:
            self._pipeline.start(prepared, before_data=self._writer.confirm)
        except DatabaseError:
            raise
        except Exception as exc:
            return self._failed(email, exc)
        self._in_flight = email
        return False

    def _settle(self) -> bool:
        """Read the verdict on the message in flight and record it. True when broken."""
        email, self._in_flight = self._in_flight, None
        if email is None:
            return False
        try:
            self._pipeline.finish()
        except Exception as exc:
            return self._failed(email, exc)
        self._writer.write(email, self.now())
        self.counts.sent += 1
        return False

    def _failed(self, email: ScheduledEmail, exc: Exception) -> bool:
        self._writer.confirm()
        self._record_failure(email, _describe(exc))
        return isinstance(exc, CONNECTION_ERRORS)

    def _cancel_if_unreachable(self, email: ScheduledEmail) -> bool:
        reason = unreachable_reason(email)
        if reason:
            claims.cancel_claimed(email, reason)
            self.counts.cancelled += 1
        return bool(reason)

    def _reconnect_or_give_back(self, backend, rest: list[ScheduledEmail]) -> None:
        _close(backend)
        try:
            backend.open()
        except Exception as exc:
            self._give_back(rest, exc)
            raise SmtpUnavailable from exc

    def _give_back(self, emails: list[ScheduledEmail], exc: Exception) -> None:
        for email in emails:
            self._record_failure(email, f"SMTP unavailable: {_describe(exc)}")

    def _record_failure(self, email: ScheduledEmail, error: str) -> None:
        final = claims.mark_failed(email, error, self.now())
        self.counts.failed += 1
        log_event(
            logger,
            logging.WARNING,
            EMAIL_SEND_FAILED,
            id=str(email.pk),
            type=email.email_type,
            attempt=email.attempts,
            final=final,
            error=error,
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def _close(backend) -> None:
    try:
        backend.close()
    except Exception:  # closing a dead connection must not hide the real outcome
        log_event(logger, logging.DEBUG, SMTP_CLOSE_FAILED, exc_info=True)
