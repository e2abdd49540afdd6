"""`BatchSender`: one lane of a run. It sends the claimed batches it is given over one
connection (SMTP, or an ESP API session) that it keeps open from batch to batch, and keeps
the lane's clock and counts (steps 2-6 of the order in `emails/outbox/__init__.py`).

Within a batch the messages are pipelined: while the server digests message N, message
N+1 is composed and serialised; N's "sent" record then travels to the database, together
with the question whether N+1 may still go to its user, while N+1's envelope goes out (see
`smtp_pipeline.py` and `sent_status_writer.py`); the answer is read before N+1's data
leaves. With a send rate the check is asked again after the wait for the send slot, so the
verdict is never older than `CHECK_LEAD`. The whole batch runs inside
`SentStatusWriter.confirming_queries()`, so every other query waits for that record's
answer first.

A reply about one message (`MessageRefused`) costs only that message: a 4xx is retried
later with backoff, a 5xx fails it for good, and a permanent mailbox error (5.1.x, 550 to
`RCPT TO`) also suppresses the address, as a hard bounce would. The connection is reset
and carries on. Only a connection that is gone is reopened, before the next message,
which it costs nothing; if it cannot be reopened the rest of the batch is backed off and
`SmtpUnavailable` ends the lane (and the run).
"""

from __future__ import annotations

import logging
import threading
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
from emails.outbox.rate import SendRateLimiter, wait_until
from emails.outbox.reachability import Unreachable, undeliverable_reason
from emails.outbox.sent_status_writer import SentStatusWriter
from emails.outbox.smtp_pipeline import MessageRefused, SmtpPipeline
from emails.outbox.suppression import suppress
from maintenance.logs.log_events import EMAIL_SEND_FAILED, SMTP_CLOSE_FAILED, log_event
from maintenance.runs.deadlines import Deadline

logger = logging.getLogger("emails.sending")

# A runner starts a message only if its slot comes this long before its claims' lease
# ends (a quarter of the lease, at most a minute), so no message leaves on a lapsed lease.
MAX_LEASE_MARGIN = 60.0
SUPPRESSED_BY = "smtp"  # the `esp` of a suppression this sender records
# With a send rate, a message's user is checked this long before its send slot, after the
# wait: the verdict is at most this old (plus the envelope's round trips) when data leaves.
CHECK_LEAD = 0.2


class SmtpUnavailable(Exception):
    """The SMTP server could not be reached; the batch's unsent emails were backed off."""


@dataclass
class SendCounts:
    sent: int = 0
    failed: int = 0
    cancelled: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __add__(self, other: SendCounts) -> SendCounts:
        return SendCounts(
            self.sent + other.sent, self.failed + other.failed, self.cancelled + other.cancelled
        )


class BatchSender:
    """Sends batches until told to stop; `now` pins the clock (tests), else it is live.
    `stopped` turns true when the lane must claim no more: the run's time budget is spent,
    the run's deadline (`run_deadline`) was cancelled (its process is shutting down, or it
    lost its hold on the task), or `halt` (shared by the run's lanes) is set. `lanes`: how
    many share the send rate."""

    def __init__(
        self,
        *,
        deadline: float,
        now: datetime | None = None,
        run_deadline: Deadline | None = None,
        halt: threading.Event | None = None,
        lanes: int = 1,
    ) -> None:
        self.deadline = deadline
        self.run_deadline = run_deadline
        self.counts = SendCounts()
        self._stopped = False
        self._halt = halt or threading.Event()
        self._lanes = lanes
        self._pinned_now = now
        self._writer = SentStatusWriter()
        self._limiter = SendRateLimiter(email_settings.EMAIL_SEND_RATE)
        self._backend = None
        self._pipeline: SmtpPipeline | None = None
        self._opened = False
        self._in_flight: ScheduledEmail | None = None
        self.holding: list[ScheduledEmail] = []  # the batch being sent

    @property
    def stopped(self) -> bool:
        return self._stopped or self._halt.is_set()

    def now(self) -> datetime:
        return self._pinned_now or timezone.now()

    def out_of_time(self) -> bool:
        """Whether the run must start no more messages."""
        if self.run_deadline is not None and self.run_deadline.passed():
            return True
        return time.monotonic() >= self.deadline

    def batch_size(self, most: int) -> int:
        """Emails to claim next: the batch size, at most `most`, and with a send rate no
        more than this lane could send within the lease at its share of that rate."""
        size = min(email_settings.SCHEDULED_EMAILS_BATCH_SIZE, most)
        rate = email_settings.EMAIL_SEND_RATE
        if rate:
            size = min(size, max(1, int(rate / self._lanes * self._usable_lease())))
        return size

    def _usable_lease(self) -> float:
        lease = email_settings.SCHEDULED_EMAILS_LEASE_SECONDS
        return lease - min(lease / 4, MAX_LEASE_MARGIN)

    def send(self, batch: list[ScheduledEmail], *, claimed_at: float) -> None:
        """Send `batch`, claimed at `time.monotonic()` value `claimed_at`, over this lane's
        connection. Raises `SmtpUnavailable` when the server cannot be reached."""
        sendable = [email for email in batch if self._deliverable(email)]
        if not sendable:
            return
        until = self.deadline
        if self._limiter.limited:  # waiting for send slots must not outlast the lease
            until = min(claimed_at + self._usable_lease(), until)
        if self._backend is None:
            self._backend = get_connection(fail_silently=False)
            self._pipeline = SmtpPipeline(self._backend)
        self.holding = sendable  # kept when the process is stopped: the run hands it back
        try:
            with self._writer.confirming_queries():
                if not self._opened or not self._pipeline.connected:
                    self._open(sendable)
                self._send_each(sendable, until)
                self._settle()
        except Exception:
            self.holding = []
            raise
        self.holding = []

    def close(self) -> None:
        """Close the lane's connection (it stays open from one batch to the next)."""
        if self._backend is not None:
            _close(self._backend)
        self._backend = self._pipeline = None
        self._opened = False

    def _send_each(self, sendable: list[ScheduledEmail], until: float) -> None:
        """The loop over the batch's messages, one at a time; between two messages (the
        top of the loop) nothing is in flight but the previous message's verdict."""
        for index, email in enumerate(sendable):
            if self.out_of_time() or self._halt.is_set():
                self._settle()  # the run's deadline, its budget, a cancel, another lane's end
                claims.release(sendable[index:])
                self._stopped = True
                return
            if not self._send_one(email, sendable[index:], until):
                if index == 0:  # other runners hold the next slots: let them go first
                    time.sleep(max(0.0, min(self._limiter.spacing, until - time.monotonic())))
                self._stopped = self.out_of_time()
                return

    def _send_one(self, email: ScheduledEmail, rest: list[ScheduledEmail], until: float) -> bool:
        """Start `email` once the previous one is settled and its user checked; False when
        the batch must stop (no send slot before `until`, the time budget's or the lease's
        end: `rest` is handed back unsent, its attempt not counted)."""
        try:
            prepared = self._pipeline.prepare(compose(email))
        except Exception as exc:
            self._settle()
            self._retry_later(email, _describe(exc))
            return True
        self._settle(check=None if self._limiter.limited else email)
        if not self._pipeline.connected:
            _close(self._backend)
            self._open(rest)
        slot = self._take_slot(until)
        if slot is None:
            claims.release(rest)
            return False
        if self._limiter.limited:  # the verdict must come after the wait, not before it
            wait_until(slot - CHECK_LEAD)
            self._writer.check(email)
        try:
            self._pipeline.start(prepared, before_data=self._clear_to_send, send_at=slot)
        except Unreachable as unreachable:
            self._cancel(email, str(unreachable))
        except MessageRefused as refusal:
            self._refused(email, refusal)
        except DatabaseError:
            raise
        except Exception as exc:  # the connection is gone mid-envelope: reopened next time
            self._retry_later(email, _describe(exc))
        else:
            self._in_flight = email
        return True

    def _clear_to_send(self) -> None:
        """Between the envelope and the data: the previous message's record is confirmed,
        and this message's user may still receive it, or `Unreachable` (nothing sent)."""
        reason = self._writer.verdict()
        if reason:
            raise Unreachable(reason)

    def _take_slot(self, until: float) -> float | None:
        if time.monotonic() >= until:
            return None
        return self._limiter.reserve(horizon=until - time.monotonic())

    def _settle(self, check: ScheduledEmail | None = None) -> None:
        """Read the verdict on the message in flight and record it; ask about `check`, the
        next message's user, in the same round trip."""
        email, self._in_flight = self._in_flight, None
        if email is not None and self._accepted(email):
            self._writer.write(email, self.now(), check=check)
            self.counts.sent += 1
        elif check is not None:
            self._writer.check(check)

    def _accepted(self, email: ScheduledEmail) -> bool:
        try:
            self._pipeline.finish()
        except MessageRefused as refusal:
            self._refused(email, refusal)
            return False
        except Exception as exc:  # the connection went away: the outcome is unknown
            self._retry_later(email, _describe(exc))
            return False
        return True

    def _refused(self, email: ScheduledEmail, refusal: MessageRefused) -> None:
        error = f"SMTP refused: {refusal}"
        if refusal.temporary:
            self._retry_later(email, error)
            return
        self._fail_for_good(email, error)
        if refusal.bad_mailbox:  # as a hard bounce would: nothing goes there again
            suppress(email.user.email, reason=error, event="bounced", esp=SUPPRESSED_BY)

    def _cancel(self, email: ScheduledEmail, reason: str) -> None:
        claims.cancel_claimed(email, reason)
        self.counts.cancelled += 1

    def _deliverable(self, email: ScheduledEmail) -> bool:
        reason = undeliverable_reason(email.user.email)
        if reason:
            self._fail_for_good(email, reason)
            return False
        return True

    def _open(self, emails: list[ScheduledEmail]) -> None:
        """Open the connection, or back `emails` off and raise `SmtpUnavailable`."""
        try:
            self._backend.open()
            self._opened = True
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
