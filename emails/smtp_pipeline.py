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
from django.core.mail.message import sanitize_address

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


class SmtpPipeline:
    """One message at a time over a Django email backend's connection, in two steps."""

    def __init__(self, backend) -> None:
        self.backend = backend

    @property
    def smtp(self) -> smtplib.SMTP | None:
        smtp = getattr(self.backend, "connection", None)
        return smtp if isinstance(smtp, smtplib.SMTP) else None

    def start(self, prepared: PreparedMessage, before_data: Callable[[], None]) -> None:
        smtp = self.smtp
        if smtp is None:
            before_data()
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
            _abandon(smtp, code)
            raise smtplib.SMTPDataError(code, reply)
        smtp.send(prepared.data)

    def finish(self) -> None:
        """The server's verdict on the last message `start` wrote."""
        smtp = self.smtp
        if smtp is None:
            return
        code, reply = smtp.getreply()
        if code != 250:
            _abandon(smtp, code)
            raise smtplib.SMTPDataError(code, reply)


def _envelope(smtp: smtplib.SMTP, prepared: PreparedMessage) -> None:
    """MAIL FROM and RCPT TO, with the same errors `smtplib.SMTP.sendmail` raises."""
    smtp.ehlo_or_helo_if_needed()
    size = [f"size={len(prepared.data)}"] if smtp.does_esmtp and smtp.has_extn("size") else []
    code, reply = smtp.mail(prepared.sender, size)
    if code != 250:
        _abandon(smtp, code)
        raise smtplib.SMTPSenderRefused(code, reply, prepared.sender)
    refused = {}
    for recipient in prepared.recipients:
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, reply)
        if code == 421:
            smtp.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(prepared.recipients):
        _abandon(smtp)
        raise smtplib.SMTPRecipientsRefused(refused)


def _abandon(smtp: smtplib.SMTP, code: int = 0) -> None:
    """Drop the half-built transaction so the connection can carry the next message."""
    if code == 421:
        smtp.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected, OSError):
        smtp.rset()
