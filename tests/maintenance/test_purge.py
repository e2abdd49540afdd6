"""Batched deletion of expired rows (`maintenance.tables.purge`), on both databases and both
PostgreSQL strategies: slices of the expiry index, and a heap walk for a large backlog
scattered over the heap."""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from maintenance.tables import purge
from maintenance.tables.purge import purge_expired
from oauth.models import PKCEState
from tests.factories import state_row

pytestmark = pytest.mark.django_db


def fill(expired: int, active: int, *, in_expiry_order: bool = False) -> None:
    """Rows with distinct expiries, one microsecond apart: the expired ones a minute ago
    and before, the active ones ten minutes ahead. Unless `in_expiry_order`, they are
    inserted shuffled, so expired and active rows share pages as under real traffic."""
    now = timezone.now()
    rows = [
        state_row(
            f"{'e' if i < expired else 'a'}{i:042d}",
            now
            + (timedelta(minutes=-1) if i < expired else timedelta(minutes=10))
            + timedelta(microseconds=i),
        )
        for i in range(expired + active)
    ]
    if not in_expiry_order:
        random.Random(7).shuffle(rows)
    PKCEState.objects.bulk_create(rows, batch_size=1000)


def analyze() -> None:
    """Refresh the planner statistics the PostgreSQL purge reads, as autovacuum would."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE oauth_pkce_states")


def purge_capturing_deletes(batch_size: int) -> tuple[int, list[str]]:
    """Purge everything expired now; return the count and the DELETE statements sent."""
    with CaptureQueriesContext(connection) as captured:
        deleted = purge_expired(PKCEState, timezone.now(), batch_size=batch_size)
    statements = [q["sql"] for q in captured.captured_queries if "DELETE FROM" in q["sql"]]
    return deleted, statements


def test_one_row_in_the_past_one_in_the_future():
    fill(expired=1, active=1)

    assert purge_expired(PKCEState, timezone.now()) == 1
    assert PKCEState.objects.get().state.startswith("a")


def test_dry_run_counts_and_deletes_nothing():
    fill(expired=30, active=10)

    assert purge_expired(PKCEState, timezone.now(), dry_run=True) == 30
    assert PKCEState.objects.count() == 40


def test_nothing_expired_deletes_nothing():
    fill(expired=0, active=20)

    assert purge_expired(PKCEState, timezone.now(), batch_size=5) == 0
    assert PKCEState.objects.count() == 20


def test_a_small_backlog_goes_in_batches_through_the_index():
    fill(expired=23, active=977)

    deleted, statements = purge_capturing_deletes(batch_size=5)

    assert deleted == 23
    assert PKCEState.objects.count() == 977
    assert not PKCEState.objects.expired().exists()
    assert len(statements) == 5  # 5 + 5 + 5 + 5 + 3
    assert all("ctid" not in sql for sql in statements)


def test_rows_sharing_one_expiry_go_together_past_the_batch_size():
    fill(expired=0, active=3)
    one_expiry = timezone.now() - timedelta(minutes=5)
    PKCEState.objects.bulk_create(state_row(f"tie{i:040d}", one_expiry) for i in range(12))

    assert purge_expired(PKCEState, timezone.now(), batch_size=5) == 12
    assert PKCEState.objects.count() == 3


@pytest.mark.postgres
def test_each_slice_starts_where_the_previous_one_ended():
    """No slice re-reads the index entries of rows the slices before it deleted."""
    fill(expired=23, active=977)

    _, statements = purge_capturing_deletes(batch_size=5)

    ends = [re.search(r'"expires_at" <= (\S+)', sql).group(1) for sql in statements[:-1]]
    starts = [re.search(r'"expires_at" > (\S+)', sql) for sql in statements]
    assert starts[0] is None
    assert [start.group(1) for start in starts[1:]] == ends
    assert '"expires_at" <= ' not in statements[-1]  # the last 3 rows: up to the cutoff


@pytest.mark.postgres
def test_a_large_backlog_in_expiry_order_goes_in_index_slices():
    """Rows inserted over time with one TTL: the slices read neighbouring pages, so the
    clean rest of the heap is never read."""
    fill(expired=3000, active=1000, in_expiry_order=True)
    analyze()

    deleted, statements = purge_capturing_deletes(batch_size=200)

    assert deleted == 3000
    assert PKCEState.objects.count() == 1000
    assert not PKCEState.objects.expired().exists()
    assert len(statements) == 16  # 15 slices of 200, and the rest after them (none)
    assert all("ctid" not in sql for sql in statements)


@pytest.mark.postgres
def test_a_large_scattered_backlog_walks_the_heap_on_postgresql():
    fill(expired=3000, active=1000)
    analyze()

    deleted, statements = purge_capturing_deletes(batch_size=200)

    assert deleted == 3000
    assert PKCEState.objects.count() == 1000
    assert not PKCEState.objects.expired().exists()
    assert len(statements) > 1
    assert all("ctid" in sql for sql in statements)


@pytest.mark.postgres
def test_a_heap_walk_range_writes_no_more_than_its_share_of_the_wal_buffers(monkeypatch):
    """Ranges sized by rows alone would be far larger here (3000 rows, some 60 pages):
    the share of the WAL buffers caps them, at 7 pages with this share, so a range's WAL
    never waits for the WAL writer to make room."""
    share = 7.5 / purge.wal_buffer_pages(connection)
    monkeypatch.setattr(purge, "WAL_BUFFERS_PER_RANGE", share)
    fill(expired=3000, active=1000)
    analyze()

    deleted, statements = purge_capturing_deletes(batch_size=3000)

    assert deleted == 3000
    assert PKCEState.objects.count() == 1000
    starts = [int(page) for sql in statements for page in re.findall(r"'\((\d+),0\)'", sql)]
    spans = {end - start for start, end in zip(starts[::2], starts[1::2], strict=True)}
    assert len(statements) > 5
    assert spans == {7}


def test_a_large_backlog_elsewhere_goes_in_key_batches():
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL slices the index or walks the heap; see the tests above")
    fill(expired=450, active=50)

    deleted, statements = purge_capturing_deletes(batch_size=100)

    assert deleted == 450
    assert PKCEState.objects.count() == 50
    assert len(statements) == 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_each_batch_is_its_own_transaction():
    """Every batch commits alone: right after a batch's DELETE, another
    connection sees that batch gone while the cleanup is still going; and the batches'
    `synchronous_commit = off` ends with them (nothing left set on the connection, which a
    pooler would hand to other clients)."""
    fill(expired=3000, active=1000)
    seen_from_outside: list[int] = []

    def watch(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "DELETE FROM" in sql and not seen_from_outside:
            seen = count_from_another_connection()
            if seen < 4000:  # the first batch that deleted anything
                seen_from_outside.append(seen)
        return result

    with connection.execute_wrapper(watch):
        purge_expired(PKCEState, timezone.now(), batch_size=200)

    assert connection.get_autocommit()
    assert 1000 < seen_from_outside[0] < 4000
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


def count_from_another_connection() -> int:
    import psycopg

    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"] or "postgres",
        dbname=db["NAME"],
    ) as other:
        return other.execute("SELECT count(*) FROM oauth_pkce_states").fetchone()[0]


def test_the_cutoff_is_respected_to_the_microsecond():
    now = timezone.now()
    fill(expired=0, active=0)
    for name, delta in [("past", -1), ("exact", 0), ("future", 1)]:
        state_row(name.ljust(43, "x"), now + timedelta(microseconds=delta)).save()

    assert purge_expired(PKCEState, now) == 1
    assert sorted(PKCEState.objects.values_list("state", flat=True)) == [
        "exact".ljust(43, "x"),
        "future".ljust(43, "x"),
    ]


@pytest.mark.postgres
def test_the_heap_walk_respects_the_cutoff_to_the_microsecond():
    """The same three rows inside a large scattered backlog, which the heap walk deletes."""
    fill(expired=3000, active=1000)
    now = timezone.now()
    for name, delta in [("past", -1), ("exact", 0), ("future", 1)]:
        state_row(name.ljust(43, "x"), now + timedelta(microseconds=delta)).save()
    analyze()

    with CaptureQueriesContext(connection) as captured:
        deleted = purge_expired(PKCEState, now, batch_size=200)

    deletes = [q["sql"] for q in captured.captured_queries if "DELETE FROM" in q["sql"]]
    assert deletes and all("ctid" in sql for sql in deletes), "the heap walk ran"
    assert deleted == 3001
    left = set(PKCEState.objects.exclude(state__startswith="a").values_list("state", flat=True))
    assert left == {"exact".ljust(43, "x"), "future".ljust(43, "x")}
