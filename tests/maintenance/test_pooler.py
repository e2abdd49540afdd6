"""Through a real PgBouncer in transaction mode: single flight holds, and no lock outlives
its run (in `pg_locks` or in any table).

In the PostgreSQL pass each test starts its own pooler in front of the test database; in
`make test-pgbouncer` the whole session already goes through one, which they reuse.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from django.db import connection

from maintenance.models import TaskRun
from oauth.models import PKCEState
from tests import pgbouncer, processes
from tests.factories import make_state
from tests.processes import StartLine, manage

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BURST = ["cleanup_pkce", "cleanup_oauth_sessions", "run_maintenance"] * 6
EXPIRED_ROWS = 1_500_000


@pytest.fixture
def pooled_url() -> Iterator[str]:
    """A DATABASE_URL for the test database through PgBouncer in transaction mode."""
    url = processes.test_database_url()
    db = connection.settings_dict
    if os.environ.get(pgbouncer.PORT_VARIABLE) == str(db.get("PORT")):
        yield url  # this session already goes through the pooler
        return
    server = (db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432))
    try:
        with pgbouncer.pgbouncer(*server) as port:
            yield pgbouncer.through(url, port)
    except pgbouncer.PgBouncerMissing as exc:
        if pgbouncer.required():
            pytest.fail(f"{exc}: the pooler tests must run in CI")
        pytest.skip(str(exc))


def held_locks() -> dict[str, int]:
    """Advisory locks on the test database (from any connection) and runs still holding
    their task."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        (advisory,) = cursor.fetchone()
    return {"advisory": advisory, "running runs": TaskRun.objects.filter(status="running").count()}


def test_a_burst_of_runs_then_sequential_runs_none_skipped_and_no_lock_left(pooled_url):
    make_state("a", expired=True)
    runners = [manage(command, "--json", DATABASE_URL=pooled_url) for command in BURST]
    finished = [(r.args[-2], *r.communicate(timeout=300), r.returncode) for r in runners]

    failures = [(cmd, err) for cmd, _out, err, code in finished if code != 0]
    assert failures == []
    assert held_locks() == {"advisory": 0, "running runs": 0}

    later = []
    for command in ["cleanup_pkce", "cleanup_oauth_sessions"] * 3:
        process = manage(command, "--json", DATABASE_URL=pooled_url)
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        later.append(json.loads(out))
    assert [body.get("skipped", False) for body in later] == [False] * 6, later
    assert all(body["success"] for body in later)
    assert held_locks() == {"advisory": 0, "running runs": 0}
    assert not TaskRun.objects.filter(status="running").exists()


@pytest.mark.slow
def test_two_runners_over_a_large_backlog_one_deletes_the_other_skips(pooled_url, tmp_path):
    """Both connected through the pooler, then released at one instant."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO oauth_pkce_states (state, server_uuid, code_verifier, redirect_uri,"
            " integrity_hash, created_at, expires_at)"
            " SELECT 's' || lpad(i::text, 42, '0'), '00000000-0000-0000-0000-000000000007',"
            " repeat('v', 43), 'https://client.test/cb', repeat('0', 64),"
            " now() - interval '2 hours', now() - interval '1 hour' + i * interval '1 ms'"
            " FROM generate_series(1, %s) AS i",
            [EXPIRED_ROWS],
        )
        cursor.execute("ANALYZE oauth_pkce_states")
    make_state("f", expired=False)

    start = StartLine(tmp_path)
    runners = [start.manage("cleanup_pkce", "--json", DATABASE_URL=pooled_url) for _ in range(2)]
    start.release()
    results = [(*r.communicate(timeout=600), r.returncode) for r in runners]

    assert [code for _out, _err, code in results] == [0, 0], [err for _o, err, _c in results]
    bodies = sorted((json.loads(out) for out, _err, _code in results), key=lambda b: "skipped" in b)
    deleted, skipped = bodies
    assert deleted["deletedCount"] == EXPIRED_ROWS
    assert skipped["skipped"] is True and skipped["success"] is True
    assert "another runner is already running pkce_cleanup (host " in skipped["message"]
    assert PKCEState.objects.count() == 1
    assert held_locks() == {"advisory": 0, "running runs": 0}
