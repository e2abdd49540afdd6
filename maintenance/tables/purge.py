"""Batched deletion of expired rows, shared by every cleanup task.

Each batch is its own short statement (and so its own transaction in autocommit), so a
cleanup never holds locks on millions of rows or bloats one transaction, and memory stays
flat: no row is ever loaded into Python. On PostgreSQL a batch commits without waiting for
the WAL flush, set for its own transaction only (nothing is left set on a connection that
a pooler hands to other clients).

On PostgreSQL each batch is a slice of the expiry index: the rows between the end of the
previous slice and the next `batch_size` expiry values. No batch re-reads the index entries
of rows deleted before it, as picking each batch with `LIMIT` from the start of the index
does (ten times the cost of one `DELETE` on a large backlog). When the rows lie in expiry
order on disk (as rows inserted over time with one TTL do), each slice reads a few
neighbouring pages, as the single `DELETE` would through the same index.

One case is walked in physical order instead: a large backlog (at least
`INDEX_PURGE_FRACTION` of the table) whose rows are scattered over the heap. Slices would
then read every page once per batch; one range of pages per batch (a TID range scan) reads
every page once, as a single `DELETE` would with a sequential scan. A range holds at most
`batch_size` rows and at most `WAL_BUFFERS_PER_RANGE` of the server's WAL buffers in pages.
Other databases pick batches by primary key through the index.

Under a run's deadline (`maintenance.runs.deadlines`) the purge stops between batches once
it has passed, and on PostgreSQL each batch runs under a `statement_timeout` of the time
left, so a batch stuck behind a row lock cannot outlast the run: either way it raises
`PurgeTimedOut` with the rows deleted so far. A statement cancelled before the deadline
(an operator's `pg_cancel_backend`) raises `PurgeCancelled`, also with the rows so far.
"""

from __future__ import annotations

from datetime import datetime

from django.db import OperationalError, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper

from maintenance.conf import maintenance_settings
from maintenance.runs.deadlines import Deadline, current

INDEX_PURGE_FRACTION = 0.05
# pg_stats.correlation of the expiry column (1: heap in expiry order, 0: shuffled) from which
# slices through the index read the heap mostly in order.
EXPIRY_ORDER_CORRELATION = 0.9
# A heap-walk range writes about one page of WAL per heap page (the first change to a page
# after a checkpoint logs the whole page); at most this share of `wal_buffers` per range.
WAL_BUFFERS_PER_RANGE = 1 / 3
TID_RANGE_MIN_VERSION = 140000  # TID range scans arrived in PostgreSQL 14
QUERY_CANCELED = "57014"  # SQLSTATE of a cancelled statement: statement_timeout or a cancel
# How early PostgreSQL's statement timer (on its wall clock) may fire by our monotonic clock.
TIMER_SLACK_SECONDS = 0.05


class PurgeTimedOut(Exception):
    """The run's deadline stopped the purge; `deleted` rows went before it did."""

    def __init__(self, deadline: Deadline, deleted: int) -> None:
        super().__init__(f"purge stopped at the deadline after {deleted} rows")
        self.deadline, self.deleted = deadline, deleted


class PurgeCancelled(Exception):
    """A batch was cancelled before the deadline (an operator's `pg_cancel_backend`), which
    is not a timeout; `deleted` rows went before it did."""

    def __init__(self, reason: str, deleted: int) -> None:
        super().__init__(f"Cancelled after {deleted} rows: {reason}")
        self.deleted = deleted


def _stop_at_deadline(deleted: int) -> None:
    deadline = current()
    if deadline is not None and deadline.passed():
        raise PurgeTimedOut(deadline, deleted)


def purge_expired(
    model: type[models.Model],
    cutoff: datetime,
    *,
    field: str = "expires_at",
    batch_size: int | None = None,
    dry_run: bool = False,
    using: str = "default",
) -> int:
    """Delete rows of `model` whose `field` is before `cutoff`; return how many (or would be)."""
    batch_size = batch_size or maintenance_settings.MAINTENANCE_DELETE_BATCH_SIZE
    expired = model._default_manager.using(using).filter(**{f"{field}__lt": cutoff})
    if dry_run:
        return expired.count()
    connection = connections[using]
    if connection.vendor == "postgresql":
        return _PostgresPurge(model, field, cutoff, batch_size, connection).run()
    return _purge_by_key(expired, batch_size)


def wal_buffer_pages(connection: BaseDatabaseWrapper) -> int:
    """The server's WAL buffers (`wal_buffers`, resolved from its default), in pages."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_size_bytes(current_setting('wal_buffers'))"
            " / current_setting('block_size')::int"
        )
        return int(cursor.fetchone()[0])


def _purge_by_key(expired: models.QuerySet, batch_size: int) -> int:
    total = 0
    while True:
        _stop_at_deadline(total)
        keys = list(expired.values_list("pk", flat=True)[:batch_size])
        if not keys:
            return total
        deleted, _ = expired.model._default_manager.filter(pk__in=keys).delete()
        total += deleted
        if len(keys) < batch_size:
            return total


class _PostgresPurge:
    def __init__(self, model, field, cutoff, batch_size, connection) -> None:
        self.table = connection.ops.quote_name(model._meta.db_table)
        self.column_name = model._meta.get_field(field).column
        self.column = connection.ops.quote_name(self.column_name)
        self.cutoff = cutoff
        self.batch_size = batch_size
        self.connection = connection
        self.deleted = 0

    def run(self) -> int:
        try:
            if self._rows_are_scattered_and_many():
                return self._walk_heap()
            return self._slice_through_index()
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != QUERY_CANCELED:
                raise
            deadline = current()
            if deadline is not None and deadline.remaining() <= TIMER_SLACK_SECONDS:
                raise PurgeTimedOut(deadline, self.deleted) from exc
            raise PurgeCancelled(str(exc), self.deleted) from exc

    def _rows_are_scattered_and_many(self) -> bool:
        if self.connection.pg_version < TID_RANGE_MIN_VERSION:
            return False
        return not self._heap_is_in_expiry_order() and self._backlog_is_large()

    def _delete(self, where: str, params: list) -> int:
        """One batch, committed without waiting for the WAL flush, and under a deadline
        given at most the time left. A crash can at worst forget the last few batches,
        whose rows are still expired and go in the next run; waiting for a disk flush per
        batch would cost more than the deletes themselves.

        The settings and the `DELETE` travel as one query string of two statements, which
        PostgreSQL runs as one implicit transaction: `set_config(..., true)` holds until
        its end, so nothing outlives the batch on this connection or on a pooled server
        connection, and it costs no extra round trip as `BEGIN; SET LOCAL ...; DELETE;
        COMMIT` would. The timeout must be set by a statement of its own: a statement's
        timer starts with it, so one set inside the `DELETE` would not bound the `DELETE`.
        """
        _stop_at_deadline(self.deleted)
        configs = ["set_config('synchronous_commit', 'off', true)"]
        deadline = current()
        if deadline is not None:
            timeout = deadline.statement_timeout_ms()
            configs.append(f"set_config('statement_timeout', '{timeout}', true)")
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {', '.join(configs)}; DELETE FROM {self.table} WHERE {where}", params
            )
            cursor.nextset()
            deleted = cursor.rowcount
        self.deleted += deleted
        return deleted

    def _fetch(self, sql: str, params: list | None = None) -> tuple | None:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params or [])
            return cursor.fetchone()

    def _table_size(self) -> tuple[int, float]:
        """Pages on disk now, and the planner's estimate of rows per page."""
        pages, relpages, reltuples = self._fetch(
            "SELECT pg_relation_size(c.oid) / current_setting('block_size')::int,"
            " c.relpages, c.reltuples FROM pg_class c WHERE c.oid = %s::regclass",
            [self.table],
        )
        rows_per_page = reltuples / relpages if relpages > 0 and reltuples > 0 else 50.0
        return int(pages), rows_per_page

    def _heap_is_in_expiry_order(self) -> bool:
        """PostgreSQL's own measure, from the last ANALYZE, of how closely the physical
        order of rows follows the expiry column; the planner weighs index scans with it.
        No statistics yet: assume scattered, the order that never costs more than a scan."""
        row = self._fetch(
            "SELECT s.correlation FROM pg_stats s"
            " JOIN pg_class c ON c.relname = s.tablename"
            " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname"
            " WHERE c.oid = %s::regclass AND s.attname = %s AND NOT s.inherited",
            [self.table, self.column_name],
        )
        correlation = row[0] if row else None
        return correlation is not None and abs(correlation) >= EXPIRY_ORDER_CORRELATION

    def _backlog_is_large(self) -> bool:
        pages, rows_per_page = self._table_size()
        threshold = max(self.batch_size, int(pages * rows_per_page * INDEX_PURGE_FRACTION))
        (expired,) = self._fetch(
            f"SELECT count(*) FROM (SELECT 1 FROM {self.table}"
            f" WHERE {self.column} < %s LIMIT %s) AS expired",
            [self.cutoff, threshold],
        )
        return expired >= threshold

    def _walk_heap(self) -> int:
        """Delete page range by page range until the end of the heap, including pages
        that other writers append meanwhile.

        A range must fit in the WAL buffers with room to spare. Its WAL (a full page image
        per page) goes to the buffers, and the commit hands the flush to the WAL writer;
        a range larger than the buffers' free part makes the backend wait on the WAL
        writer for space (`LWLock:WALWrite`) before each further page. Alone, that wait is
        short; beside other work the WAL writer is slow to get the CPU, and ranges of
        10,000 rows (3 MB of WAL in the default 4 MB of buffers) ran 1.2x a single
        `DELETE`, against 0.96x at a third of the buffers (bench/README.md).
        """
        where = f"ctid >= %s::tid AND ctid < %s::tid AND {self.column} < %s"
        max_pages = max(1, int(wal_buffer_pages(self.connection) * WAL_BUFFERS_PER_RANGE))
        total = page = 0
        while True:
            pages, rows_per_page = self._table_size()
            if page >= pages:
                return total
            step = max(1, min(int(self.batch_size / rows_per_page), max_pages))
            while page < pages:
                total += self._delete(where, [f"({page},0)", f"({page + step},0)", self.cutoff])
                page += step

    def _slice_through_index(self) -> int:
        """Each slice ends at the `batch_size`-th expiry value after the previous slice and
        includes every row sharing that value, so it may hold a few more rows. Finding that
        value reads the slice's index entries once more, without the heap; a probe that only
        skips to it (`OFFSET`) costs about a quarter less than counting the slice. The last
        slice, shorter than a batch, needs no end."""
        total, after = 0, None
        while True:
            lower = "" if after is None else f"{self.column} > %s AND "
            params = [] if after is None else [after]
            end = self._fetch(
                f"SELECT {self.column} FROM {self.table} WHERE {lower}{self.column} < %s"
                f" ORDER BY {self.column} OFFSET %s LIMIT 1",
                [*params, self.cutoff, self.batch_size - 1],
            )
            if end is None:
                return total + self._delete(f"{lower}{self.column} < %s", [*params, self.cutoff])
            total += self._delete(f"{lower}{self.column} <= %s", [*params, *end])
            after = end[0]
