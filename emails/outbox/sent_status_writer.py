"""`SentStatusWriter`: marks emails sent, and checks the next one, without a database
round trip between two messages.

Marking an email sent is one `UPDATE` per message; the same statement also reads whether
the next email may still go to its user (`reachability.verdict_sql`), so each message is
checked at the moment the previous one is recorded, just before its own envelope leaves,
at no extra round trip. On PostgreSQL the statement is handed to the server (written to
its socket, so it runs and commits even if this process dies the next instant) and its
answer is read only when the next message is ready to commit (see `smtp_pipeline.py`):
the database round trip overlaps the next message's composition and SMTP envelope
instead of adding to them, and no message leaves before the previous one's record is
confirmed and its own verdict read, so a crash still repeats at most the one message in
flight. The statement is prepared once per database connection, so the server does not
parse and plan it for every message. Should the prepared statement vanish (PgBouncer in
transaction pooling hands the next statement to another server connection; a pooler's
`DISCARD ALL`), it is redone unprepared before the next message leaves. Elsewhere the
same two statements run to completion.

While a write is unanswered the connection can carry nothing else. `confirming_queries()`
keeps that rule for a whole batch: any query through Django's connection first waits for
the last write's answer (`confirm()`, which raises `DatabaseError` when that write
failed), so no call site has to remember it. Only `transaction.atomic()` itself sends no
query on entry: start a transaction after a query, or call `confirm()` first.
"""

from __future__ import annotations

import hashlib
import select
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from functools import cache

import psycopg
from django.db import DatabaseError, connection

from emails.models import EmailStatus, ScheduledEmail
from emails.outbox.reachability import USER_GONE, email_id, unreachable_reason, verdict_sql

TABLE = ScheduledEmail._meta.db_table
SQL = (  # the table name comes from model metadata, values are always parameters
    f"UPDATE {TABLE} SET status = {{}}, sent_at = {{}}, claimed_until = NULL, last_error = '' "  # noqa: S608
    "WHERE id = {} AND status = {}"
)
TUPLES_OK = 2  # libpq's PGRES_TUPLES_OK: the statement returned rows


@cache
def statement() -> tuple[bytes, bytes]:
    """The statement's name and text: mark $3 sent and read the verdict on $5, either may
    be NULL (a data-modifying `WITH` runs whether or not the `SELECT` reads it). Named after
    its text, so a server connection that kept an older version's statement (a pooler's)
    never runs it in place of this one."""
    mark = SQL.format("$1", "$2::timestamptz", "$3::uuid", "$4")
    sql = f"WITH sent AS ({mark}) {verdict_sql('$5::uuid')}".encode()
    return b"pluggedin_mark_sent_" + hashlib.blake2b(sql, digest_size=6).hexdigest().encode(), sql


DUPLICATE_PREPARED_STATEMENT = "42P05"
UNKNOWN_PREPARED_STATEMENT = "26000"

# Server connections (libpq handles) on which the statement is prepared; a reconnection
# brings a new handle, which prepares it again. Shared by the lanes' threads.
_prepared_on: weakref.WeakSet = weakref.WeakSet()
_prepared_lock = threading.Lock()


class SentStatusWriter:
    def __init__(self) -> None:
        self._waiting = False
        self._values: list[bytes | None] = []
        self._checking: ScheduledEmail | None = None
        self._verdict = ""

    def write(
        self, email: ScheduledEmail, sent_at: datetime, *, check: ScheduledEmail | None = None
    ) -> None:
        """Mark `email` sent at `sent_at` and, in the same round trip, check whether
        `check` may still go (read by `verdict()`); on PostgreSQL the answer is read by
        `confirm()`."""
        self._send(email, sent_at, check)

    def check(self, email: ScheduledEmail) -> None:
        """Ask whether `email` may still go to its user; `verdict()` reads the answer."""
        self._send(None, None, email)

    def verdict(self) -> str:
        """Why the email last checked must not go (it is cancelled), or "" when it may."""
        self.confirm()
        return self._verdict

    def _send(
        self, email: ScheduledEmail | None, sent_at: datetime | None, check: ScheduledEmail | None
    ) -> None:
        self.confirm()
        self._checking, self._verdict = check, ""
        if connection.vendor != "postgresql":
            self._run_here(email, sent_at, check)
            return
        connection.ensure_connection()
        raw = connection.connection.pgconn
        self._values = _params(email, sent_at, check)
        _prepare(raw)
        raw.send_query_prepared(statement()[0], self._values)
        self._waiting = True

    def _run_here(
        self, email: ScheduledEmail | None, sent_at: datetime | None, check: ScheduledEmail | None
    ) -> None:
        if email is not None:
            params = [
                EmailStatus.SENT.value,
                connection.ops.adapt_datetimefield_value(sent_at),
                email_id(email),
                EmailStatus.SENDING.value,
            ]
            with connection.cursor() as cursor:
                cursor.execute(SQL.format("%s", "%s", "%s", "%s"), params)
        if check is not None:
            self._verdict = unreachable_reason(check)

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
        rows = None
        for result in _results(raw):
            if result.error_message:
                error, state = _error(result)
            elif result.status == TUPLES_OK:
                rows = result
        if state == UNKNOWN_PREPARED_STATEMENT and raw.status == 0:
            with _prepared_lock:
                _prepared_on.discard(raw)
            raw.send_query_params(statement()[1], self._values)
            rows = _last(_results(raw))
            error, _ = _error(rows)
        if error or raw.status != 0:  # 0 is CONNECTION_OK
            raise DatabaseError(error or "lost the database connection while recording a send")
        if self._checking is not None:
            self._verdict = _read_verdict(rows)


def _read_verdict(result) -> str:
    if result is None or result.ntuples == 0:
        return USER_GONE
    return (result.get_value(0, 0) or b"").decode()


def _prepare(raw) -> None:
    with _prepared_lock:
        if raw in _prepared_on:
            return
    raw.send_prepare(*statement())
    error, state = _error(_last(_results(raw)))
    if error and state != DUPLICATE_PREPARED_STATEMENT:
        raise DatabaseError(error)
    with _prepared_lock:
        _prepared_on.add(raw)


def _results(raw) -> list:
    """The results of the statement sent last, waited for in `poll`, which lets other
    threads run: libpq's own blocking wait holds the interpreter lock for the whole round
    trip, and would stall every other lane of the run meanwhile (eight threads making
    2 ms round trips made a third as many that way)."""
    try:
        raw.consume_input()
        while raw.is_busy():
            _readable(raw.socket)
            raw.consume_input()
    except psycopg.Error:
        pass  # the connection is gone: `get_result` and the connection's status say so
    results = []
    while (result := raw.get_result()) is not None:
        results.append(result)
    return results


def _readable(fd: int) -> None:
    """Block, without the interpreter lock, until `fd` has something to read."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll()
    else:  # no poll(): select() takes descriptors below 1024 only, enough there
        select.select([fd], [], [])


def _last(results: list):
    """The last result, or None when the connection went away before any."""
    return results[-1] if results else None


def _error(result) -> tuple[str, str]:
    """The server's error message and SQLSTATE for `result`; empty strings on success."""
    if result is None:
        return "lost the database connection while recording a send", ""
    message = result.error_message.decode(errors="replace").strip()
    state = (result.error_field(ord("C")) or b"").decode() if message else ""
    return message, state


def _params(
    email: ScheduledEmail | None, sent_at: datetime | None, check: ScheduledEmail | None
) -> list[bytes | None]:
    sent = email is not None
    values = [
        EmailStatus.SENT.value if sent else None,
        sent_at.isoformat() if sent else None,
        str(email.pk) if sent else None,
        EmailStatus.SENDING.value,
        str(check.pk) if check is not None else None,
    ]
    return [None if value is None else value.encode() for value in values]
