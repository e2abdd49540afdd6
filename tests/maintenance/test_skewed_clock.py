"""A host whose clock is minutes off (a second process under Debian's `faketime`) neither
takes a task that a running run holds nor deletes a PKCE state that has not expired: every
instant that coordinates is the database's (SPEC "Clock"). PostgreSQL only: SQLite runs
inside each process, so its clock is that process's (SQLite is for a single host)."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import timedelta

import pytest

from maintenance.models import RunStatus, Trigger
from maintenance.runs.runner import run_task
from oauth.models import PKCEState
from oauth.pkce import create_state
from tests.factories import SERVER, held_by, make_state
from tests.processes import MANAGE, PYTHON, ROOT, subprocess_env
from tests.tools import requires_tool

pytestmark = pytest.mark.django_db(transaction=True)


def skewed(offset: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`manage.py *args` in a process whose clock runs `offset` (`+20m`) off, with `env`
    added to its environment."""
    (faketime,) = requires_tool("faketime")
    return subprocess.run(
        [faketime, "-f", offset, PYTHON, *args],
        cwd=ROOT,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_faketime_moves_the_clock_of_a_python_process():
    """The premise of the tests below: the second process really reads a shifted clock."""
    seen = skewed("+20m", "-c", "import time; print(time.time())")
    assert seen.returncode == 0, seen.stderr
    assert float(seen.stdout) - time.time() > 19 * 60


@pytest.mark.postgres
def test_a_host_twenty_minutes_ahead_neither_deletes_nor_refuses_a_live_pkce_state():
    live = create_state(SERVER, "https://client.test/cb")  # 10 minutes left
    make_state("x", expired=True)

    cleanup = skewed("+20m", MANAGE, "cleanup_pkce", "--json")
    consume = f"from oauth.pkce import consume_state as c; print(c({live.state!r}).outcome.value)"
    consumed = skewed("+20m", MANAGE, "shell", "--no-imports", "-c", consume)

    assert cleanup.returncode == 0, cleanup.stderr
    assert json.loads(cleanup.stdout)["deletedCount"] == 1  # the expired one only
    assert consumed.stdout.strip() == "ok", consumed.stderr
    assert not PKCEState.objects.exists()  # consumed, once


@pytest.mark.postgres
def test_a_host_five_minutes_ahead_does_not_take_a_task_a_running_run_holds():
    holder = held_by("pkce_cleanup", "web-2", 4242, lease=timedelta(minutes=1))

    done = skewed("+5m", MANAGE, "cleanup_pkce", "--json")

    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["skipped"] is True, body
    assert "another runner is already running pkce_cleanup (host web-2, pid 4242" in body["message"]
    holder.refresh_from_db()
    assert holder.status == RunStatus.RUNNING


@pytest.mark.postgres
def test_a_pause_from_a_host_forty_minutes_behind_holds_its_full_duration():
    pause = ["maintenance_pause", "pkce_cleanup", "--reason", "migration", "--for", "30m"]
    paused = skewed("-40m", MANAGE, *pause)

    assert paused.returncode == 0, paused.stderr
    assert run_task("pkce_cleanup", Trigger.COMMAND).paused  # 30 minutes from now, not -10
