"""The deadline a run carries: time left, the statement timeout, the timed-out failure."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from maintenance.checks.settings import task_setting_errors
from maintenance.outcome import TaskFailed
from maintenance.runs import deadlines


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_deadline_counts_down_and_fails_with_partial_counts():
    clock = FakeClock()
    assert deadlines.current() is None
    with deadlines.deadline_of(2, clock=clock) as deadline:
        assert deadlines.current() is deadline
        assert deadline.statement_timeout_ms() == 2000
        clock.now += 1.5
        deadline.check({"deleted": 1})
        assert deadline.statement_timeout_ms() == 500
        clock.now += 1
        assert deadline.passed()
        assert deadline.statement_timeout_ms() == 1
        with pytest.raises(TaskFailed, match="Timed out after 2 s") as failed:
            deadline.check({"deleted": 3})
        assert failed.value.result == {"deleted": 3}
    assert deadlines.current() is None


def test_a_max_runtime_that_cannot_work_is_refused(settings, demo):
    prefix = "DEMO"
    setattr(settings, f"{prefix}_MAX_RUNTIME_SECONDS", "0")
    errors = [e for e in task_setting_errors() if "MAX_RUNTIME_SECONDS" in e.msg]
    assert [e.id for e in errors] == ["maintenance.E002"]
    setattr(settings, f"{prefix}_MAX_RUNTIME_SECONDS", "90")
    assert not [e for e in task_setting_errors() if "MAX_RUNTIME_SECONDS" in e.msg]


@pytest.mark.django_db(transaction=True)
def test_a_run_carries_the_deadline_in_force(settings, isolated_registry):
    from maintenance.runs.runner import run_task
    from tests.factories import fake_task

    def report(**options):
        return {"seconds": deadlines.current().seconds}

    isolated_registry.register(fake_task(func=report, message="{seconds}"))
    assert run_task("demo", "command").result == {"seconds": 1800}
    settings.DEMO_MAX_RUNTIME_SECONDS = "45"
    assert run_task("demo", "command").result == {"seconds": 45}


@pytest.mark.django_db(transaction=True)
def test_the_lease_is_not_renewed_past_the_deadline_and_its_grace(settings, monkeypatch):
    from datetime import timedelta

    from django.db.models.functions import Now

    from maintenance.models import TaskRun
    from maintenance.runs import leases
    from tests.factories import held_by

    settings.MAINTENANCE_LOCK_LEASE_SECONDS = 0.3
    monkeypatch.setattr(leases, "DEADLINE_GRACE", timedelta(seconds=0.1))
    claimed = time.monotonic()
    run = held_by("demo", "web-1", 1, lease=timedelta(seconds=0.2))
    renewals = []
    with leases.Renewal(run.pk, "demo", claimed, leases.hold_limit(0.1)):
        for _ in range(6):  # several renewal periods
            time.sleep(0.1)
            renewals.append(TaskRun.objects.get(pk=run.pk).lease_expires_at)
    lapsed = TaskRun.objects.filter(pk=run.pk, lease_expires_at__lt=Now()).exists()

    # claimed at most as late as the lease began: no renewal reaches past its limit
    assert max(renewals) <= run.lease_expires_at + timedelta(milliseconds=20)
    assert lapsed


@pytest.mark.django_db(transaction=True)
def test_the_lease_is_renewed_while_the_run_is_inside_its_deadline(settings):
    from datetime import timedelta

    from maintenance.models import TaskRun
    from maintenance.runs import leases
    from tests.factories import held_by

    settings.MAINTENANCE_LOCK_LEASE_SECONDS = 0.3
    run = held_by("demo", "web-1", 1, lease=timedelta(seconds=0.3))
    with leases.Renewal(run.pk, "demo", time.monotonic(), leases.hold_limit(60)):
        time.sleep(0.5)
        renewed = TaskRun.objects.get(pk=run.pk).lease_expires_at

    assert renewed > run.lease_expires_at


def _expired_pkce_rows(count: int) -> list[str]:
    """`count` expired PKCE states, in expiry order on disk and analysed, so the purge
    slices the expiry index oldest first; their states, oldest first."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from oauth.models import PKCEState
    from tests.factories import state_row

    now = timezone.now()
    states = [f"s{i:042d}" for i in range(count)]
    rows = [
        state_row(s, now - timedelta(hours=1) + timedelta(seconds=i)) for i, s in enumerate(states)
    ]
    PKCEState.objects.bulk_create(rows)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {PKCEState._meta.db_table}")
    return states


@contextmanager
def _newest_of_five_expired_rows_locked(settings, max_runtime: str) -> Iterator:
    """Five expired states purged two per batch under `max_runtime`, the newest locked
    by another connection (yielded, its transaction open) for the block: the third batch
    waits on it."""
    import psycopg

    from tests.processes import test_database_url

    settings.MAINTENANCE_DELETE_BATCH_SIZE = 2
    settings.PKCE_CLEANUP_MAX_RUNTIME_SECONDS = max_runtime
    states = _expired_pkce_rows(5)
    with psycopg.connect(test_database_url()) as holder:
        holder.execute("SELECT 1 FROM oauth_pkce_states WHERE state = %s FOR UPDATE", [states[-1]])
        yield holder
        holder.rollback()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_purge_stuck_on_a_locked_row_times_out_with_its_partial_count(settings):
    import psycopg
    from django.db import connection

    from maintenance.runs.runner import run_task
    from tests.processes import test_database_url

    with _newest_of_five_expired_rows_locked(settings, max_runtime="1") as holder:
        began = time.monotonic()
        outcome = run_task("pkce_cleanup", "command")
        took = time.monotonic() - began
        assert outcome.status == "failed"
        assert "timed out after 1 s" in outcome.error.lower()
        assert outcome.result == {"deletedCount": 4}
        assert 0.9 < took < 3
        assert not holder.closed and holder.info.transaction_status.name == "INTRANS"

    assert run_task("pkce_cleanup", "command").result == {"deletedCount": 1}
    for _ in range(4):  # fresh connections (through the pooler: its server connections)
        with psycopg.connect(test_database_url()) as fresh:
            assert fresh.execute("SHOW statement_timeout").fetchone() == ("0",)
            assert fresh.execute("SHOW synchronous_commit").fetchone() == ("on",)
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("0",)


def _cancel_the_purge_waiting_on_a_lock(cancelled: list[bool]) -> None:
    """What a DBA does: `pg_cancel_backend` on the stuck cleanup, once it waits."""
    import psycopg

    from tests.processes import test_database_url

    with psycopg.connect(test_database_url(), autocommit=True) as dba:
        for _ in range(200):
            row = dba.execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE '%DELETE FROM%'"
            ).fetchone()
            if row:
                cancelled.append(row[0])
                return
            time.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_operator_cancel_before_the_deadline_is_not_reported_as_a_timeout(settings):
    from maintenance.runs.runner import run_task

    cancelled: list[bool] = []
    with _newest_of_five_expired_rows_locked(settings, max_runtime="60"):
        dba = threading.Thread(target=_cancel_the_purge_waiting_on_a_lock, args=(cancelled,))
        dba.start()
        began = time.monotonic()
        outcome = run_task("pkce_cleanup", "command")
        took = time.monotonic() - began
        dba.join()

    assert cancelled == [True]
    assert outcome.status == "failed"
    assert outcome.error == "Cancelled after 4 rows: canceling statement due to user request"
    assert outcome.result == {"deletedCount": 4}
    assert took < 10
    assert run_task("pkce_cleanup", "command").result == {"deletedCount": 1}


@pytest.mark.django_db(transaction=True)
def test_a_purge_past_its_deadline_stops_between_batches(settings, monkeypatch):
    from maintenance.runs.runner import run_task
    from maintenance.tables import purge

    settings.MAINTENANCE_DELETE_BATCH_SIZE = 2
    settings.PKCE_CLEANUP_MAX_RUNTIME_SECONDS = "1"
    _expired_pkce_rows(5)
    batches = iter([False, False, True])  # the deadline passes after two batches
    real = purge.current

    class Passing:
        def __init__(self, deadline):
            self.deadline = deadline

        def passed(self):
            return next(batches, True)

        def __getattr__(self, name):
            return getattr(self.deadline, name)

    monkeypatch.setattr(purge, "current", lambda: Passing(real()))
    outcome = run_task("pkce_cleanup", "command")
    assert outcome.status == "failed"
    assert outcome.error == "Timed out after 1 s"
    assert outcome.result == {"deletedCount": 4}
