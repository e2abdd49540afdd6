"""Handing one message to the SMTP server, split at the point of no return.

An SMTP transaction commits only when the server accepts the message data; `MAIL FROM`
and `RCPT TO` before it deliver nothing. `deliver` runs those two round trips first, then
`before_commit` (which confirms the previous email's "sent" record in the database), then
the data. The database wait overlaps the SMTP round trips, and still no message leaves
before the previous one is on record: a crash repeats at most the message in flight.

Backends that are not Django's SMTP backend (console, locmem in tests) get `before_commit`
and then a plain `send_messages`.
"""

from __future__ import annotations

import contextlib
import smtplib
from collections.abc import Callable

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.message import sanitize_address


def deliver(backend, message: EmailMessage, before_commit: Callable[[], None]) -> None:
    smtp = getattr(backend, "connection", None)
    if not isinstance(smtp, smtplib.SMTP):
        before_commit()
        backend.send_messages([message])
        return
    encoding = message.encoding or settings.DEFAULT_CHARSET
    sender = sanitize_address(message.from_email, encoding)
    recipients = [sanitize_address(address, encoding) for address in message.recipients()]
    data = message.message().as_bytes(linesep="\r\n")
    _envelope(smtp, sender, recipients, len(data))
    try:
        before_commit()
    except Exception:
        _abandon(smtp)
        raise
    code, reply = smtp.data(data)
    if code != 250:
        _abandon(smtp, code)
        raise smtplib.SMTPDataError(code, reply)


def _envelope(smtp: smtplib.SMTP, sender: str, recipients: list[str], size: int) -> None:
    """MAIL FROM and RCPT TO, with the same errors `smtplib.SMTP.sendmail` raises."""
    smtp.ehlo_or_helo_if_needed()
    options = [f"size={size}"] if smtp.does_esmtp and smtp.has_extn("size") else []
    code, reply = smtp.mail(sender, options)
    if code != 250:
        _abandon(smtp, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    refused = {}
    for recipient in recipients:
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, reply)
        if code == 421:
            smtp.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(recipients):
        _abandon(smtp)
        raise smtplib.SMTPRecipientsRefused(refused)


def _abandon(smtp: smtplib.SMTP, code: int = 0) -> None:
    """Drop the half-built transaction so the connection can carry the next message."""
    if code == 421:
        smtp.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        smtp.rset()
