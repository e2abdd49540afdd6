"""`BatchSender`: sends claimed batches of emails, each over one SMTP connection, and
keeps the run's clock and counts (steps 2-6 of the order in `emails/outbox/__init__.py`).

Within a batch the messages are pipelined: while the server digests message N, message
N+1 is composed and serialised; N's "sent" record then travels to the database while
N+1's envelope goes out (see `smtp_pipeline.py` and `sent_status_writer.py`). The whole
batch runs inside `SentStatusWriter.confirming_queries()`, so every other query waits for
that record's answer first.

A reply about one message (`MessageRefused`) costs only that message: a 4xx is retried
later with backoff, a 5xx fails it for good, and a permanent mailbox error (5.1.x, 550 to
`RCPT TO`) also suppresses the address, as a hard bounce would. The connection is reset
and carries on. Only a connection that is gone is reopened, before the next message,
which it costs nothing; if it cannot be reopened the rest of the batch is backed off and
`SmtpUnavailable` ends the run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime

from django.core.mail import get_connection
from django.db import DatabaseError
from django.utils import timezone

from emails.conf import email_settings
from emails.models import ScheduledEmail
from emails.outbox import claims
from emails.outbox.compose import compose
from emails.outbox.rate import SendRateLimiter
from emails.outbox.reachability import undeliverable_reason, unreachable_reason
from emails.outbox.sent_status_writer import SentStatusWriter
from emails.outbox.smtp_pipeline import MessageRefused, SmtpPipeline, prepare
from emails.outbox.suppression import suppress, suppressed_among
from maintenance.logs.log_events import EMAIL_SEND_FAILED, SMTP_CLOSE_FAILED, log_event
from maintenance.runs.deadlines import Deadline

logger = logging.getLogger("emails.sending")

# A runner starts a message only if its slot comes this long before its claims' lease
# ends (a quarter of the lease, at most a minute), so no message leaves on a lapsed lease.
MAX_LEASE_MARGIN = 60.0
SUPPRESSED_BY = "smtp"  # the `esp` of a suppression this sender records


class SmtpUnavailable(Exception):
    """The SMTP server could not be reached; the batch's unsent emails were backed off."""


@dataclass
class SendCounts:
    sent: int = 0
    failed: int = 0
    cancelled: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class BatchSender:
    """Sends batches until told to stop; `now` pins the clock (tests), else it is live.
    `stopped` turns true when the run must claim no more: its time budget is spent, or
    the run's deadline (`run_deadline`) was cancelled (its process is shutting down, or
    it lost its hold on the task)."""

    def __init__(
        self, *, deadline: float, now: datetime | None = None, run_deadline: Deadline | None = None
    ) -> None:
        self.deadline = deadline
        self.run_deadline = run_deadline
        self.counts = SendCounts()
        self.stopped = False
        self._pinned_now = now
        self._writer = SentStatusWriter()
        self._limiter = SendRateLimiter(email_settings.EMAIL_SEND_RATE)
        self._backend = None
        self._pipeline: SmtpPipeline | None = None
        self._in_flight: ScheduledEmail | None = None

    def now(self) -> datetime:
        return self._pinned_now or timezone.now()

    def out_of_time(self) -> bool:
        """Whether the run must start no more messages."""
        if self.run_deadline is not None and self.run_deadline.passed():
            return True
        return time.monotonic() >= self.deadline

    def batch_size(self, most: int) -> int:
        """Emails to claim next: the batch size, at most `most`, and with a send rate no
        more than one runner could send within the lease at that rate."""
        size = min(email_settings.SCHEDULED_EMAILS_BATCH_SIZE, most)
        rate = email_settings.EMAIL_SEND_RATE
        if rate:
            size = min(size, max(1, int(rate * self._usable_lease())))
        return size

    def _usable_lease(self) -> float:
        lease = email_settings.SCHEDULED_EMAILS_LEASE_SECONDS
        return lease - min(lease / 4, MAX_LEASE_MARGIN)

    def send(self, batch: list[ScheduledEmail], *, claimed_at: float) -> None:
        """Send `batch`, claimed at `time.monotonic()` value `claimed_at`, over one
        connection. Raises `SmtpUnavailable` when the server cannot be reached."""
        suppressed = suppressed_among([email.user.email for email in batch])
        sendable = [email for email in batch if self._sendable(email, suppressed)]
        if not sendable:
            return
        until = self.deadline
        if self._limiter.limited:  # waiting for send slots must not outlast the lease
            until = min(claimed_at + self._usable_lease(), until)
        self._backend = get_connection(fail_silently=False)
        self._pipeline = SmtpPipeline(self._backend)
        try:
            with self._writer.confirming_queries():
                self._open(sendable)
                self._send_each(sendable, until)
                self._settle()
        finally:
            self._pipeline = None
            _close(self._backend)

    def _send_each(self, sendable: list[ScheduledEmail], until: float) -> None:
        """The loop over the batch's messages, one at a time; between two messages (the
        top of the loop) nothing is in flight but the previous message's verdict."""
        for index, email in enumerate(sendable):
            if self.out_of_time():  # the run's deadline or time budget, or a cancel
                claims.release(sendable[index:])
                self.stopped = True
                return
            if not self._send_one(email, sendable[index:], until):
                if index == 0:  # other runners hold the next slots: let them go first
                    time.sleep(max(0.0, min(self._limiter.spacing, until - time.monotonic())))
                self.stopped = self.out_of_time()
                return

    def _send_one(self, email: ScheduledEmail, rest: list[ScheduledEmail], until: float) -> bool:
        """Start `email` once the previous one is settled; False when the batch must stop
        (no send slot before `until`, the time budget's or the lease's end: `rest` is
        handed back unsent, its attempt not counted)."""
        try:
            prepared = prepare(compose(email))
        except Exception as exc:
            self._settle()
            self._retry_later(email, _describe(exc))
            return True
        self._settle()
        if not self._pipeline.connected:
            _close(self._backend)
            self._open(rest)
        slot = self._take_slot(until)
        if slot is None:
            claims.release(rest)
            return False
        try:
            self._pipeline.start(prepared, before_data=self._writer.confirm, send_at=slot)
        except MessageRefused as refusal:
            self._refused(email, refusal)
        except DatabaseError:
            raise
        except Exception as exc:  # the connection is gone mid-envelope: reopened next time
            self._retry_later(email, _describe(exc))
        else:
            self._in_flight = email
        return True

    def _take_slot(self, until: float) -> float | None:
        if time.monotonic() >= until:
            return None
        return self._limiter.reserve(horizon=until - time.monotonic())

    def _settle(self) -> None:
        """Read the verdict on the message in flight and record it."""
        email, self._in_flight = self._in_flight, None
        if email is None:
            return
        try:
            self._pipeline.finish()
        except MessageRefused as refusal:
            self._refused(email, refusal)
            return
        except Exception as exc:  # the connection went away: the outcome is unknown
            self._retry_later(email, _describe(exc))
            return
        self._writer.write(email, self.now())
        self.counts.sent += 1

    def _refused(self, email: ScheduledEmail, refusal: MessageRefused) -> None:
        error = f"SMTP refused: {refusal}"
        if refusal.temporary:
            self._retry_later(email, error)
            return
        self._fail_for_good(email, error)
        if refusal.bad_mailbox:  # as a hard bounce would: nothing goes there again
            suppress(email.user.email, reason=error, event="bounced", esp=SUPPRESSED_BY)

    def _sendable(self, email: ScheduledEmail, suppressed: set[str]) -> bool:
        reason = unreachable_reason(email, suppressed)
        if reason:
            claims.cancel_claimed(email, reason)
            self.counts.cancelled += 1
            return False
        reason = undeliverable_reason(email.user.email)
        if reason:
            self._fail_for_good(email, reason)
            return False
        return True

    def _open(self, emails: list[ScheduledEmail]) -> None:
        """Open the connection, or back `emails` off and raise `SmtpUnavailable`."""
        try:
            self._backend.open()
        except Exception as exc:
            error = f"SMTP unavailable: {_describe(exc)}"
            for email in emails:
                self._retry_later(email, error)
            raise SmtpUnavailable(error) from exc

    def _retry_later(self, email: ScheduledEmail, error: str) -> None:
        final = claims.mark_failed(email, error, self.now())
        self._count_failure(email, error, final)

    def _fail_for_good(self, email: ScheduledEmail, error: str) -> None:
        claims.fail_for_good(email, error)
        self._count_failure(email, error, final=True)

    def _count_failure(self, email: ScheduledEmail, error: str, final: bool) -> None:
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
