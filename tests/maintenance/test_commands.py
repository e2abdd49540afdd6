"""`cleanup_pkce` as an operator or cron runs it: real subprocesses, real exit codes."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

import oauth.models
from maintenance.models import TaskRun
from oauth.models import PKCEState
from tests.factories import make_state, state_row
from tests.processes import run_manage

pytestmark = pytest.mark.django_db(transaction=True)


def test_json_prints_the_http_body_and_deletes_only_expired_states(client, auth_header):
    make_state("a", expired=True)
    make_state("b", expired=False)

    result = run_manage("cleanup_pkce", "--json")

    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["success"] is True
    assert body["deletedCount"] == 1
    assert list(PKCEState.objects.values_list("state", flat=True)) == ["b" * 43]
    http_body = client.post("/api/oauth/cleanup-pkce", **auth_header).json()
    assert set(body) == set(http_body)
    assert TaskRun.objects.get(pk=body["runId"]).trigger == "command"


def test_dry_run_counts_and_deletes_nothing():
    make_state("a", expired=True)
    make_state("b", expired=False)

    result = run_manage("cleanup_pkce", "--json", "--dry-run")

    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["dryRun"] is True
    assert body["expiredCount"] == 1
    assert body["deletedCount"] == 0
    assert body["message"] == "Dry run: 1 expired PKCE states would be deleted"
    assert PKCEState.objects.count() == 2


def test_plain_output_is_one_human_line():
    make_state("a", expired=True)

    result = run_manage("cleanup_pkce")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Deleted 1 expired PKCE states")
    assert result.stderr == ""


@pytest.mark.parametrize(
    "database_url",
    [
        "postgres://nobody@127.0.0.1:1/nothing",  # nothing listens on port 1
        "sqlite:////nonexistent-directory/db.sqlite3",
        "nonsense://",
    ],
    ids=["refused", "unopenable", "unknown-scheme"],
)
def test_a_broken_database_url_exits_1_with_one_line(database_url):
    result = run_manage("cleanup_pkce", DATABASE_URL=database_url)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_traceback_flag_shows_the_traceback():
    result = run_manage("cleanup_pkce", "--traceback", DATABASE_URL="postgres://x@127.0.0.1:1/x")

    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_json_failure_prints_the_500_body_and_exits_1():
    result = run_manage("cleanup_pkce", "--json", DATABASE_URL="postgres://x@127.0.0.1:1/x")

    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert body["success"] is False
    assert "OperationalError" in body["error"]
    assert body["runId"] is None
    assert len(result.stderr.strip().splitlines()) == 1


def test_cron_trigger_is_recorded():
    result = run_manage("cleanup_pkce", "--trigger", "cron")

    assert result.returncode == 0, result.stderr
    assert TaskRun.objects.get().trigger == "cron"


def test_help_says_it_is_safe_for_cron():
    result = run_manage("cleanup_pkce", "--help")

    assert "cron" in result.stdout
    assert "--dry-run" in result.stdout
    assert "--json" in result.stdout


def test_expired_only_by_a_microsecond_is_deleted_and_future_is_kept(monkeypatch):
    """The cleanup's cutoff (the database's clock, read once) is pinned, so the rows sit
    exactly around it: expired a microsecond ago goes, expiring at this very instant or a
    microsecond later stays."""
    now = timezone.now()
    for name, delta in [("p", -1), ("e", 0), ("f", 1)]:
        state_row(name * 43, now + timedelta(microseconds=delta)).save(force_insert=True)
    monkeypatch.setattr(oauth.models, "database_now", lambda using: now)

    call_command("cleanup_pkce", stdout=io.StringIO())

    assert sorted(PKCEState.objects.values_list("state", flat=True)) == ["e" * 43, "f" * 43]
