"""Sending messages over one SMTP connection, split at the point of no return.

An SMTP transaction commits only when the server accepts the message data; `MAIL FROM`
and `RCPT TO` before it deliver nothing. `SmtpPipeline.start` runs the envelope, then
`before_data` (which confirms the previous email's "sent" record in the database), then
writes the data; `finish` reads the server's verdict. Between the two the caller prepares
the next message while the server digests this one, and the database round trip overlaps
the next envelope. Still no message's data leaves before the previous one is on record, so
a crash repeats at most the message in flight.

Backends other than Django's SMTP backend (console, locmem, ESPs) send in `start`.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.mail.message import sanitize_address

from emails.outbox.rate import wait_until

LEADING_DOT = re.compile(rb"(?m)^\.")


@dataclass
class PreparedMessage:
    """A message ready for the wire: serialised once, before its turn comes."""

    message: EmailMessage
    sender: str
    recipients: list[str]
    data: bytes


def prepare(message: EmailMessage) -> PreparedMessage:
    encoding = message.encoding or settings.DEFAULT_CHARSET
    data = message.message().as_bytes(linesep="\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return PreparedMessage(
        message=message,
        sender=sanitize_address(message.from_email, encoding),
        recipients=[sanitize_address(address, encoding) for address in message.recipients()],
        data=LEADING_DOT.sub(b"..", data) + b".\r\n",
    )


class MessageRefused(Exception):
    """The server refused this one message (a 4xx or 5xx reply other than 421); the
    connection is reset and carries the next message. Any other error from the pipeline
    means the connection is gone."""

    def __init__(self, code: int, reply: bytes | str, stage: str) -> None:
        self.code = code
        self.reply = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
        self.stage = stage
        super().__init__(f"{code} {self.reply} (after {stage})".replace("\n", " "))

    @property
    def temporary(self) -> bool:
        """A 4xx reply, or any refusal of our sender (not about this message's recipient):
        the same message may be accepted later."""
        return self.code < 500 or self.stage == "MAIL FROM"

    @property
    def bad_mailbox(self) -> bool:
        """A permanent error about the recipient's mailbox (5.1.x, or 550/551/553 to
        `RCPT TO` without an enhanced code): the address will never take mail."""
        if self.temporary:
            return False
        enhanced = ENHANCED_STATUS.match(self.reply)
        if enhanced:
            return enhanced.group(1) in BAD_MAILBOX_STATUSES or enhanced.group(1).startswith("5.1.")
        return self.stage == "RCPT TO" and self.code in BAD_MAILBOX_CODES


ENHANCED_STATUS = re.compile(r"\s*([245]\.\d{1,3}\.\d{1,3})\b")
BAD_MAILBOX_CODES = (550, 551, 553)
BAD_MAILBOX_STATUSES = ("5.2.1",)  # mailbox disabled
SERVICE_CLOSING = 421


class SmtpPipeline:
    """One message at a time over a Django email backend's connection, in two steps.

    Raises `MessageRefused` for a reply about the message; anything else it raises
    (`SMTPServerDisconnected`, `OSError`, a 421 reply) means the connection is gone.
    """

    def __init__(self, backend) -> None:
        self.backend = backend

    def prepare(self, message: EmailMessage) -> PreparedMessage:
        """`message` ready for this backend: serialised for the wire over SMTP; other
        backends (an ESP's API) take the message object as it is."""
        if isinstance(self.backend, SmtpBackend):
            return prepare(message)
        return PreparedMessage(message=message, sender="", recipients=[], data=b"")

    @property
    def smtp(self) -> smtplib.SMTP | None:
        smtp = getattr(self.backend, "connection", None)
        return smtp if isinstance(smtp, smtplib.SMTP) else None

    @property
    def connected(self) -> bool:
        """False once the SMTP connection is gone (other backends are always connected)."""
        if not isinstance(self.backend, SmtpBackend):
            return True
        smtp = self.backend.connection
        return smtp is not None and smtp.sock is not None

    def start(
        self, prepared: PreparedMessage, before_data: Callable[[], None], send_at: float = 0.0
    ) -> None:
        """Send `prepared` up to the server's verdict. The data leaves no earlier than
        `send_at` (a `time.monotonic()` value): the wait comes after the server's 354, as
        close to the data as it can be, so the data reaches the server on time."""
        smtp = self.smtp
        if smtp is None:
            before_data()
            wait_until(send_at)
            self.backend.send_messages([prepared.message])
            return
        _envelope(smtp, prepared)
        try:
            before_data()
        except Exception:
            _abandon(smtp)
            raise
        smtp.putcmd("data")
        code, reply = smtp.getreply()
        if code != 354:
            _refused(smtp, code, reply, "DATA")
        wait_until(send_at)
        smtp.send(prepared.data)

    def finish(self) -> None:
        """The server's verdict on the last message `start` wrote."""
        smtp = self.smtp
        if smtp is None:
            return
        code, reply = smtp.getreply()
        if code != 250:
            _refused(smtp, code, reply, "end of data")


def _envelope(smtp: smtplib.SMTP, prepared: PreparedMessage) -> None:
    """MAIL FROM and RCPT TO; the message goes on when at least one recipient is taken."""
    smtp.ehlo_or_helo_if_needed()
    size = [f"size={len(prepared.data)}"] if smtp.does_esmtp and smtp.has_extn("size") else []
    code, reply = smtp.mail(prepared.sender, size)
    if code != 250:
        _refused(smtp, code, reply, "MAIL FROM")
    refusals = []
    for recipient in prepared.recipients:
        code, reply = smtp.rcpt(recipient)
        if code == SERVICE_CLOSING:
            _refused(smtp, code, reply, "RCPT TO")
        if code not in (250, 251):
            refusals.append((code, reply))
    if refusals and len(refusals) == len(prepared.recipients):
        _refused(smtp, *refusals[-1], "RCPT TO")


def _refused(smtp: smtplib.SMTP, code: int, reply: bytes, stage: str) -> None:
    """Raise the refusal, after dropping the half-built transaction so the connection can
    carry the next message; a 421 closes the connection and is not about the message."""
    if code == SERVICE_CLOSING or code < 400:
        smtp.close()
        raise smtplib.SMTPServerDisconnected(f"{code} {reply.decode(errors='replace')}")
    _abandon(smtp)
    raise MessageRefused(code, reply, stage)


def _abandon(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPServerDisconnected, OSError):
        smtp.rset()
