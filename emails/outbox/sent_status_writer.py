"""`SentStatusWriter`: marks emails sent without a database round trip between two messages.

Marking an email sent is one `UPDATE` per message. On PostgreSQL the statement is handed
to the server (written to its socket, so it runs and commits even if this process dies
the next instant) and its answer is read only when the next message is ready to commit
(see `smtp_pipeline.py`): the database round trip overlaps the next message's composition and
SMTP envelope instead of adding to them, and no message leaves before the previous one's
record is confirmed, so a crash still repeats at most the one message in flight.
The statement is prepared once per database connection, so the server does not parse and
plan the same `UPDATE` for every message. Should the prepared statement vanish (PgBouncer in
transaction pooling hands the next statement to another server connection; a pooler's
`DISCARD ALL`), the write is redone unprepared before the next message leaves. Elsewhere
the same statement runs to completion.

While a write is unanswered the connection can carry nothing else. `confirming_queries()`
keeps that rule for a whole batch: any query through Django's connection first waits for
the last write's answer (`confirm()`, which raises `DatabaseError` when that write
failed), so no call site has to remember it. Only `transaction.atomic()` itself sends no
query on entry: start a transaction after a query, or call `confirm()` first.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime

from django.db import DatabaseError, connection

from emails.models import EmailStatus, ScheduledEmail

TABLE = ScheduledEmail._meta.db_table
SQL = (  # the table name comes from model metadata, values are always parameters
    f"UPDATE {TABLE} SET status = {{}}, sent_at = {{}}, claimed_until = NULL, last_error = '' "  # noqa: S608
    "WHERE id = {} AND status = {}"
)
PLACEHOLDERS_SQL = SQL.format("$1", "$2::timestamptz", "$3::uuid", "$4").encode()
STATEMENT = b"pluggedin_mark_sent"
DUPLICATE_PREPARED_STATEMENT = "42P05"
UNKNOWN_PREPARED_STATEMENT = "26000"

# Server connections (libpq handles) on which STATEMENT is prepared; a reconnection brings
# a new handle, which prepares it again.
_prepared_on: weakref.WeakSet = weakref.WeakSet()


class SentStatusWriter:
    def __init__(self) -> None:
        self._waiting = False
        self._values: list[bytes] = []

    def write(self, email: ScheduledEmail, sent_at: datetime) -> None:
        """Mark `email` sent at `sent_at`; on PostgreSQL the answer is read by `confirm()`."""
        self.confirm()
        if connection.vendor != "postgresql":
            params = [
                EmailStatus.SENT.value,
                connection.ops.adapt_datetimefield_value(sent_at),
                ScheduledEmail._meta.pk.get_db_prep_value(email.pk, connection),
                EmailStatus.SENDING.value,
            ]
            with connection.cursor() as cursor:
                cursor.execute(SQL.format("%s", "%s", "%s", "%s"), params)
            return
        connection.ensure_connection()
        raw = connection.connection.pgconn
        values = self._values = [str(value).encode() for value in _params(email, sent_at)]
        _prepare(raw)
        raw.send_query_prepared(STATEMENT, values)
        self._waiting = True

    @contextmanager
    def confirming_queries(self) -> Iterator[SentStatusWriter]:
        """Within: every query on the connection waits for the last write's answer first.
        On leaving normally the last write is confirmed too, and so it is when the process
        ends the run (SystemExit, KeyboardInterrupt): the batch is then handed back, and a
        message already out must stay recorded `sent`, not go back to `pending`."""
        with connection.execute_wrapper(self._confirm_first):
            try:
                yield self
            except Exception:
                raise
            except BaseException:
                with suppress(DatabaseError):  # the interruption must go on regardless
                    self.confirm()
                raise
        self.confirm()

    def _confirm_first(self, execute, sql, params, many, context):
        self.confirm()
        return execute(sql, params, many, context)

    def confirm(self) -> None:
        """Wait for the last write's answer; raise if the database refused or went away."""
        if not self._waiting:
            return
        self._waiting = False
        raw = connection.connection.pgconn
        error = state = ""
        while (result := raw.get_result()) is not None:
            if result.error_message:
                error, state = _error(result)
        if state == UNKNOWN_PREPARED_STATEMENT and raw.status == 0:
            _prepared_on.discard(raw)
            result = raw.exec_params(PLACEHOLDERS_SQL, self._values)
            error, _ = _error(result)
        if error or raw.status != 0:  # 0 is CONNECTION_OK
            raise DatabaseError(error or "lost the database connection while recording a send")


def _prepare(raw) -> None:
    if raw in _prepared_on:
        return
    result = raw.prepare(STATEMENT, PLACEHOLDERS_SQL)
    error, state = _error(result)
    if error and state != DUPLICATE_PREPARED_STATEMENT:
        raise DatabaseError(error)
    _prepared_on.add(raw)


def _error(result) -> tuple[str, str]:
    """The server's error message and SQLSTATE for `result`; empty strings on success."""
    message = result.error_message.decode(errors="replace").strip()
    state = (result.error_field(ord("C")) or b"").decode() if message else ""
    return message, state


def _params(email: ScheduledEmail, sent_at: datetime) -> list:
    return [EmailStatus.SENT.value, sent_at.isoformat(), str(email.pk), EmailStatus.SENDING.value]
