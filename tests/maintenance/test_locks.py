"""Single flight: a task never runs twice at once, across threads and processes, and no
lock outlives its run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from maintenance.models import TaskLock, TaskRun
from maintenance.observe.status import maintenance_status
from maintenance.runs import runner
from maintenance.runs.locks import task_lock
from oauth.models import PKCEState
from tests.assertions import assert_skipped_body
from tests.factories import fake_task, make_state
from tests.processes import StartLine, manage, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_second_holder_is_refused_until_the_first_releases():
    results: dict[str, bool] = {}
    held = threading.Event()
    release = threading.Event()

    def first() -> None:
        with task_lock("demo") as claim:
            results["first"] = bool(claim)
            held.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(10)
    with task_lock("demo") as claim:
        results["second"] = bool(claim)
        holder = claim.holder
    release.set()
    thread.join()
    with task_lock("demo") as claim:
        results["after"] = bool(claim)

    assert results == {"first": True, "second": False, "after": True}
    assert f"host {socket.gethostname()}, pid {os.getpid()}, since " in holder


def test_a_finished_run_leaves_no_lock_and_the_next_run_is_not_skipped(isolated_registry):
    isolated_registry.register(fake_task("demo"))
    outcomes = [runner.run_task("demo", "command") for _ in range(3)]

    assert [o.status for o in outcomes] == ["succeeded"] * 3
    assert not TaskLock.objects.exists()
    assert _advisory_locks() == 0


def test_a_failed_run_leaves_no_lock(isolated_registry):
    def broken(**options):
        raise RuntimeError("boom")

    isolated_registry.register(fake_task("demo", broken))
    assert runner.run_task("demo", "command").status == "failed"

    assert not TaskLock.objects.exists()
    assert runner.run_task("demo", "command").status == "failed"  # ran again, not skipped


def test_the_lease_is_renewed_while_the_run_lives(isolated_registry, settings):
    """A run longer than the lease keeps the task: its lease is renewed, not lapsed."""
    settings.MAINTENANCE_LOCK_LEASE_SECONDS = 1
    started, finish = threading.Event(), threading.Event()

    def long_run(**options):
        started.set()
        finish.wait(30)
        return {"count": 1}

    isolated_registry.register(fake_task("demo", long_run))
    first = threading.Thread(target=lambda: (runner.run_task("demo", "http"), connection.close()))
    first.start()
    try:
        assert started.wait(30)
        time.sleep(2.5)  # more than twice the lease
        second = runner.run_task("demo", "command")
    finally:
        finish.set()
        first.join(30)

    assert second.skipped
    assert f"pid {os.getpid()}" in second.message
    assert sorted(TaskRun.objects.values_list("status", flat=True)) == ["skipped", "succeeded"]
    assert not TaskLock.objects.exists()


def test_a_lapsed_lease_is_taken_over_and_its_run_closed_as_failed(isolated_registry):
    """A runner that died left its lease and a `running` run: once the lease has lapsed,
    the next run takes the task, and closes the dead run as failed."""
    isolated_registry.register(fake_task("demo"))
    long_ago = timezone.now() - timedelta(minutes=5)
    dead = TaskRun.objects.create(
        task="demo", trigger="cron", started_at=long_ago, host="web-9", pid=4242
    )
    TaskLock.objects.create(
        task="demo", owner="gone", host="web-9", pid=4242, acquired_at=long_ago,
        expires_at=long_ago + timedelta(seconds=60),
    )  # fmt: skip
    abandoned = maintenance_status()["tasks"]["demo"]["abandonedRuns"]

    outcome = runner.run_task("demo", "command")

    assert [(r["id"], r["host"], r["pid"]) for r in abandoned] == [(dead.pk, "web-9", 4242)]
    assert outcome.status == "succeeded"
    dead.refresh_from_db()
    assert dead.status == "failed"
    assert dead.error.startswith("Runner stopped")
    assert "web-9" in dead.error and "4242" in dead.error
    assert dead.finished_at is not None
    assert maintenance_status()["tasks"]["demo"]["abandonedRuns"] == []
    assert not TaskLock.objects.exists()


def test_a_live_lease_is_not_taken_and_the_skip_names_its_holder(isolated_registry):
    isolated_registry.register(fake_task("demo"))
    since = timezone.now() - timedelta(seconds=30)
    TaskLock.objects.create(
        task="demo", owner="other", host="worker-3", pid=777, acquired_at=since,
        expires_at=timezone.now() + timedelta(seconds=30),
    )  # fmt: skip

    outcome = runner.run_task("demo", "command")

    assert outcome.skipped and outcome.success
    assert "host worker-3, pid 777, since " in outcome.message
    assert TaskLock.objects.get().owner == "other"


def _pg_conninfo() -> str:
    db = connection.settings_dict
    return (
        f"host={db.get('HOST') or '127.0.0.1'} port={db.get('PORT') or 5432} "
        f"user={db.get('USER') or 'postgres'} dbname={db['NAME']}"
    )


@contextmanager
def pkce_table_locked() -> Iterator[None]:
    """Another connection holds a table lock on the PKCE states for the block, so a
    cleanup that reaches its DELETE waits there until the block ends."""
    blocker = psycopg.connect(_pg_conninfo(), autocommit=True)
    blocker.execute("BEGIN")
    blocker.execute("LOCK TABLE oauth_pkce_states IN EXCLUSIVE MODE")
    try:
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


@contextmanager
def runner_stuck_in_its_delete(**env: str) -> Iterator[subprocess.Popen]:
    """A `cleanup_pkce` process holding the task lock, kept inside its DELETE by a table
    lock that another connection holds until the block ends."""
    with pkce_table_locked():
        runner = manage("cleanup_pkce", "--json", **env)
        assert wait_for(_delete_waiting, timeout=60), "the runner never reached its DELETE"
        yield runner


def _delete_waiting() -> int | None:
    """The backend pid of a DELETE waiting for a lock, if any."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE '%%DELETE FROM%%'"
            " AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _advisory_locks() -> int:
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_runners_released_together_one_deletes_the_others_skip(tmp_path):
    """Three `cleanup_pkce` processes, connected, then released at one instant: one takes
    the task and waits in its DELETE (a table lock holds it there) while the other two
    answer that it is running; then it deletes."""
    make_state("a", expired=True)
    make_state("b", expired=False)
    start = StartLine(tmp_path)
    runners = [start.manage("cleanup_pkce", "--json") for _ in range(3)]
    with pkce_table_locked():
        start.release()
        wait_for(lambda: sum(r.poll() is not None for r in runners) >= 2, timeout=30)
    answers = [(r.pid, *r.communicate(timeout=60), r.returncode) for r in runners]

    assert [code for *_, code in answers] == [0, 0, 0], answers
    bodies = {pid: json.loads(out) for pid, out, _err, _code in answers}
    deleted = [pid for pid, body in bodies.items() if "skipped" not in body]
    assert len(deleted) == 1, bodies
    (winner,) = deleted
    assert bodies[winner]["deletedCount"] == 1
    for pid, body in bodies.items():
        if pid != winner:
            skipped = TaskRun.objects.get(pk=body["runId"])
            assert_skipped_body(body, skipped, success=True, says=f"pid {winner}")
    assert PKCEState.objects.count() == 1
    statuses = sorted(TaskRun.objects.values_list("status", flat=True))
    assert statuses == ["skipped", "skipped", "succeeded"]


@pytest.mark.postgres
def test_a_killed_runner_on_this_host_frees_its_task_at_once():
    """Its pid is gone, so the next run takes the task without waiting for the lease."""
    make_state("a", expired=True)
    with runner_stuck_in_its_delete(MAINTENANCE_LOCK_LEASE_SECONDS="300") as doomed:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(30)
    (doomed_run,) = TaskRun.objects.filter(status="running")
    survivor = manage("cleanup_pkce", "--json")
    out, err = survivor.communicate(timeout=60)

    assert survivor.returncode == 0, err
    body = json.loads(out)
    assert body["success"] is True and "skipped" not in body, body
    assert not PKCEState.objects.exists()
    doomed_run.refresh_from_db()
    assert doomed_run.status == "failed"
    assert doomed_run.error.startswith("Runner stopped")
    assert not TaskLock.objects.exists()


@pytest.mark.postgres
def test_a_terminated_backend_leaves_its_own_error_in_the_run_log():
    make_state("a", expired=True)
    with runner_stuck_in_its_delete() as doomed:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [_delete_waiting()])
        out, err = doomed.communicate(timeout=60)

    assert doomed.returncode == 1, (out, err)
    (run,) = TaskRun.objects.all()
    assert run.status == "failed"
    assert "terminating connection due to administrator command" in run.error, run.error
    assert "connection is closed" not in run.error
    assert not TaskLock.objects.exists()
    assert runner.run_task("pkce_cleanup", "command").status == "succeeded"


def test_skips_behind_a_stuck_holder_do_not_look_healthy(isolated_registry):
    """Every trigger skips while a stuck runner holds the task; the ticks nobody served
    show in status as skipped or missed although each skip was a `success`."""
    isolated_registry.register(fake_task("demo", cron="* * * * *"))
    long_ago = timezone.now() - timedelta(minutes=10)
    TaskRun.objects.create(task="demo", trigger="cron", status="succeeded", started_at=long_ago)
    TaskLock.objects.create(
        task="demo", owner="stuck", host="worker-3", pid=777, acquired_at=long_ago,
        expires_at=timezone.now() + timedelta(seconds=60),
    )  # fmt: skip

    skips = [runner.run_task("demo", trigger) for trigger in ("cron", "http", "scheduler")]
    status = maintenance_status()

    assert all(o.skipped and o.success for o in skips)
    assert status["healthy"] is False
    assert status["tasks"]["demo"]["healthy"] is False
    # the current tick was skipped by every trigger (or, at a minute's turn, the one before
    # it was missed): either way the problem names it
    assert status["tasks"]["demo"]["problem"].endswith(("was skipped", "was missed"))
