"""Recording "sent" without waiting for the database between two messages.

Marking an email sent is one `UPDATE` per message. On PostgreSQL the statement is handed
to the server (written to its socket, so it runs and commits even if this process dies
the next instant) before the next message goes out, and its answer is read only before
the following write. The database round trip then overlaps the SMTP round trip instead
of adding to it, which is what keeps processing within 0.7x of a bare SMTP loop
(bench/emails_throughput.py). Elsewhere the ORM update runs to completion.

Call `flush()` before using the connection for anything else; it raises `DatabaseError`
when the last write failed.
"""

from __future__ import annotations

from datetime import datetime

from django.db import DatabaseError, connection

from .models import EmailStatus, ScheduledEmail

TABLE = ScheduledEmail._meta.db_table
SQL = (  # the table name comes from model metadata, values are always parameters
    f"UPDATE {TABLE} SET status = {{}}, sent_at = {{}}, claimed_until = NULL, last_error = '' "  # noqa: S608
    "WHERE id = {} AND status = {}"
)


class SentLog:
    def __init__(self) -> None:
        self._waiting = False

    def record(self, email: ScheduledEmail, now: datetime) -> None:
        self.flush()
        if connection.vendor != "postgresql":
            ScheduledEmail.objects.filter(pk=email.pk, status=EmailStatus.SENDING).update(
                status=EmailStatus.SENT, sent_at=now, claimed_until=None, last_error=""
            )
            return
        connection.ensure_connection()
        raw = connection.connection.pgconn
        values = [str(value).encode() for value in _params(email, now)]
        raw.send_query_params(
            SQL.format("$1", "$2::timestamptz", "$3::uuid", "$4").encode(), values
        )
        self._waiting = True

    def flush(self) -> None:
        """Wait for the last write's answer; raise if the database refused or went away."""
        if not self._waiting:
            return
        self._waiting = False
        raw = connection.connection.pgconn
        error = ""
        while (result := raw.get_result()) is not None:
            if result.error_message:
                error = result.error_message.decode(errors="replace").strip()
        if error or raw.status != 0:  # 0 is CONNECTION_OK
            raise DatabaseError(error or "lost the database connection while recording a send")


def _params(email: ScheduledEmail, now: datetime) -> list:
    return [EmailStatus.SENT.value, now.isoformat(), str(email.pk), EmailStatus.SENDING.value]
