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

from maintenance.models import TaskRun
from maintenance.observe.status import maintenance_status
from maintenance.runs import runner
from oauth.models import PKCEState
from tests.assertions import assert_skipped_body
from tests.factories import fake_task, held_by, make_state
from tests.processes import StartLine, manage, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def a_run_in_progress(registry, trigger: str) -> Iterator[list]:
    """Task `demo` running in a thread for the block; its outcome, once it ends."""
    started, finish = threading.Event(), threading.Event()

    def long_run(**options):
        started.set()
        finish.wait(30)
        return {"count": 1}

    registry.register(fake_task("demo", long_run))
    outcomes: list = []
    first = threading.Thread(
        target=lambda: (outcomes.append(runner.run_task("demo", trigger)), connection.close())
    )
    first.start()
    try:
        assert started.wait(30)
        yield outcomes
    finally:
        finish.set()
        first.join(30)


def test_a_second_run_is_refused_while_the_first_holds_the_task(isolated_registry):
    with a_run_in_progress(isolated_registry, "command") as outcomes:
        second = runner.run_task("demo", "command")
    after = runner.run_task("demo", "command")

    assert [o.status for o in (*outcomes, second, after)] == ["succeeded", "skipped", "succeeded"]
    assert f"(host {socket.gethostname()}, pid {os.getpid()}, since " in second.message


def test_a_finished_run_leaves_no_lock_and_the_next_run_is_not_skipped(isolated_registry):
    isolated_registry.register(fake_task("demo"))
    outcomes = [runner.run_task("demo", "command") for _ in range(3)]

    assert [o.status for o in outcomes] == ["succeeded"] * 3
    assert not running_rows()
    assert _advisory_locks() == 0


def test_a_failed_run_leaves_no_lock(isolated_registry):
    def broken(**options):
        raise RuntimeError("boom")

    isolated_registry.register(fake_task("demo", broken))
    assert runner.run_task("demo", "command").status == "failed"

    assert not running_rows()
    assert runner.run_task("demo", "command").status == "failed"  # ran again, not skipped


def test_the_lease_is_renewed_while_the_run_lives(isolated_registry, settings):
    """A run longer than the lease keeps the task: its lease is renewed, not lapsed."""
    settings.MAINTENANCE_LOCK_LEASE_SECONDS = 1
    with a_run_in_progress(isolated_registry, "http"):
        time.sleep(2.5)  # more than twice the lease
        second = runner.run_task("demo", "command")

    assert second.skipped
    assert f"pid {os.getpid()}" in second.message
    assert sorted(TaskRun.objects.values_list("status", flat=True)) == ["skipped", "succeeded"]
    assert not running_rows()


def test_a_lapsed_lease_is_taken_over_and_its_run_closed_as_failed(isolated_registry):
    """A runner that died left its `running` run: once its lease has run out, the next
    run takes the task, and closes the dead run as failed."""
    isolated_registry.register(fake_task("demo"))
    long_ago = timezone.now() - timedelta(minutes=5)
    dead = held_by("demo", "web-9", 4242, lease=-timedelta(minutes=4), started_at=long_ago)
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
    assert not running_rows()


def test_a_live_lease_is_not_taken_and_the_skip_names_its_holder(isolated_registry):
    isolated_registry.register(fake_task("demo"))
    holder = held_by("demo", "worker-3", 777, lease=timedelta(seconds=30))

    outcome = runner.run_task("demo", "command")

    assert outcome.skipped and outcome.success
    assert "host worker-3, pid 777, since " in outcome.message
    assert list(running_rows()) == [holder]


def test_a_killed_runner_on_another_host_is_freed_when_its_lease_ends_not_before(
    isolated_registry,
):
    """Another host's pid cannot be checked from here: its lease (on the database's
    clock) decides."""
    isolated_registry.register(fake_task("demo"))
    killed = held_by("demo", "web-9", 4242, lease=timedelta(seconds=3))

    before = runner.run_task("demo", "command")
    assert wait_for(lambda: TaskRun.objects.filter(pk=killed.pk).lapsed().exists(), 10)
    after = runner.run_task("demo", "command")

    assert before.skipped and "host web-9, pid 4242" in before.message
    assert after.status == "succeeded"
    killed.refresh_from_db()
    assert killed.status == "failed" and killed.error.startswith("Runner stopped")


def running_rows():
    return TaskRun.objects.filter(status="running")


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
    """A `cleanup_pkce` process holding the task, kept inside its DELETE by a table
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
    assert not running_rows()
    assert _advisory_locks() == 0


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
    assert list(running_rows()) == []


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
    assert not running_rows()
    assert runner.run_task("pkce_cleanup", "command").status == "succeeded"


def test_skips_behind_a_stuck_holder_do_not_look_healthy(isolated_registry):
    """Every trigger skips while a stuck runner holds the task; the ticks nobody served
    show in status as skipped or missed although each skip was a `success`."""
    isolated_registry.register(fake_task("demo", cron="* * * * *"))
    long_ago = timezone.now() - timedelta(minutes=10)
    TaskRun.objects.create(task="demo", trigger="cron", status="succeeded", started_at=long_ago)
    held_by("demo", "worker-3", 777, lease=timedelta(seconds=60), started_at=long_ago)

    skips = [runner.run_task("demo", trigger) for trigger in ("cron", "http", "scheduler")]
    status = maintenance_status()

    assert all(o.skipped and o.success for o in skips)
    assert status["healthy"] is False
    assert status["tasks"]["demo"]["healthy"] is False
    # the current tick was skipped by every trigger (or, at a minute's turn, the one before
    # it was missed): either way the problem names it
    assert status["tasks"]["demo"]["problem"].endswith(("was skipped", "was missed"))
