"""Single flight: a task never runs twice at once, across threads and processes."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection

from maintenance.locks import advisory_key, task_lock
from maintenance.models import TaskLock, TaskRun
from oauth.models import PKCEState
from tests.factories import make_state
from tests.processes import manage

pytestmark = pytest.mark.django_db(transaction=True)


def test_advisory_keys_are_stable_and_distinct():
    assert advisory_key("pkce_cleanup") == advisory_key("pkce_cleanup")
    assert advisory_key("pkce_cleanup") != advisory_key("scheduled_emails")
    assert -(2**63) <= advisory_key("pkce_cleanup") < 2**63


def test_second_holder_is_refused_until_the_first_releases():
    results: dict[str, bool] = {}
    held = threading.Event()
    release = threading.Event()

    def first() -> None:
        with task_lock("demo") as got:
            results["first"] = got
            held.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(10)
    with task_lock("demo") as got:
        results["second"] = got
    release.set()
    thread.join()
    with task_lock("demo") as got:
        results["after"] = got

    assert results == {"first": True, "second": False, "after": True}


def test_an_expired_lease_is_taken_over(settings):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL uses advisory locks, released by the server")
    settings.MAINTENANCE_LOCK_LEASE_SECONDS = -1  # every lease is born expired
    with task_lock("demo") as first, task_lock("demo") as second:
        assert first and second
    assert not TaskLock.objects.exists()


def _pg_conninfo() -> str:
    db = connection.settings_dict
    return (
        f"host={db.get('HOST') or '127.0.0.1'} port={db.get('PORT') or 5432} "
        f"user={db.get('USER') or 'postgres'} dbname={db['NAME']}"
    )


@contextmanager
def runner_stuck_in_its_delete() -> Iterator[subprocess.Popen]:
    """A `cleanup_pkce` process holding the task lock, kept inside its DELETE by a table
    lock that another connection holds until the block ends."""
    blocker = psycopg.connect(_pg_conninfo())
    blocker.execute("BEGIN")
    blocker.execute("LOCK TABLE oauth_pkce_states IN EXCLUSIVE MODE")
    try:
        runner = manage("cleanup_pkce", "--json")
        _wait_for(lambda: TaskRun.objects.filter(status="running").exists())
        yield runner
    finally:
        blocker.rollback()
        blocker.close()


@pytest.mark.postgres
def test_two_runners_started_together_one_deletes_the_other_skips():
    make_state("a", expired=True)
    make_state("b", expired=False)
    with runner_stuck_in_its_delete() as first:
        second = manage("cleanup_pkce", "--json")
        second_out, second_err = second.communicate(timeout=60)
    first_out, first_err = first.communicate(timeout=60)

    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    first_body, second_body = json.loads(first_out), json.loads(second_out)
    assert first_body["deletedCount"] == 1
    assert second_body["skipped"] is True
    assert second_body["success"] is True
    assert "deletedCount" not in second_body
    assert PKCEState.objects.count() == 1
    statuses = sorted(TaskRun.objects.values_list("status", flat=True))
    assert statuses == ["skipped", "succeeded"]


@pytest.mark.postgres
def test_a_killed_runner_does_not_leave_the_task_locked():
    make_state("a", expired=True)
    with runner_stuck_in_its_delete() as doomed:
        doomed.kill()
        doomed.wait(30)
    _wait_for(lambda: _other_backends() == 0)  # the server has noticed the dead client

    survivor = manage("cleanup_pkce", "--json")
    out, err = survivor.communicate(timeout=60)

    assert survivor.returncode == 0, err
    body = json.loads(out)
    assert body["success"] is True
    assert "skipped" not in body
    assert not PKCEState.objects.exists()


def _other_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def _wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
