"""`run_task`: every outcome is recorded in the run log and nothing is swallowed."""

from __future__ import annotations

import logging

import pytest
from django.db import connection

from maintenance.models import TaskRun
from maintenance.runs.runner import run_task
from tests.assertions import assert_skipped_body
from tests.factories import fake_task

pytestmark = pytest.mark.django_db


def test_success_is_recorded_with_counts_host_and_pid(isolated_registry):
    isolated_registry.register(fake_task())

    outcome = run_task("demo", "command")

    run = TaskRun.objects.get(pk=outcome.run_id)
    assert run.status == "succeeded"
    assert run.result == {"count": 1}
    assert run.finished_at >= run.started_at
    assert run.duration_ms is not None
    assert run.host and run.pid
    assert outcome.body()["message"] == "Did 1 things"


def test_a_raising_task_is_a_failed_run_with_the_error(isolated_registry):
    def broken(**options):
        raise ValueError("bad row 42")

    isolated_registry.register(fake_task(func=broken))

    outcome = run_task("demo", "scheduler")

    assert outcome.failed and outcome.http_status == 500
    run = TaskRun.objects.get(pk=outcome.run_id)
    assert run.status == "failed"
    assert run.error == "ValueError: bad row 42"
    body = outcome.body()
    assert body == {
        "success": False,
        "error": "ValueError: bad row 42",
        "task": "demo",
        "timestamp": body["timestamp"],
        "durationMs": body["durationMs"],
        "runId": run.pk,
    }
    assert "traceback" in outcome.body(debug=True)


def test_a_closed_gate_is_a_skipped_run_that_is_not_success(isolated_registry):
    isolated_registry.register(fake_task(gate=lambda: "CLOUD_DEPLOY is not true"))

    outcome = run_task("demo", "http")

    run = TaskRun.objects.get(pk=outcome.run_id)
    assert_skipped_body(outcome.body(), run, success=False, says="CLOUD_DEPLOY is not true")


def test_unknown_task_fails_cleanly():
    outcome = run_task("no_such_task", "command")

    assert outcome.failed
    assert "no_such_task" in outcome.error
    assert not TaskRun.objects.exists()


def test_options_reach_the_task(isolated_registry):
    seen = {}

    def remember(**options):
        seen.update(options)
        return {}

    isolated_registry.register(fake_task(func=remember))

    run_task("demo", "command", dry_run=True)

    assert seen == {"dry_run": True}


@pytest.fixture
def run_log_comes_back():
    """Put the run log's table back if a test took it away."""
    yield
    if "maintenance_task_runs_away" in connection.introspection.table_names():
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE maintenance_task_runs_away RENAME TO maintenance_task_runs")


@pytest.mark.django_db(transaction=True)
def test_a_run_log_lost_mid_run_still_reports_the_tasks_failure(
    isolated_registry, run_log_comes_back, caplog
):
    """The run cannot record its end (the run log is gone when it fails): the caller still
    gets the task's own error and the run's id, and the lost record is logged."""

    def lose_the_run_log(**options):
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE maintenance_task_runs RENAME TO maintenance_task_runs_away")
        raise RuntimeError("disk on fire")

    isolated_registry.register(fake_task(func=lose_the_run_log))
    caplog.set_level(logging.WARNING, logger="maintenance")

    outcome = run_task("demo", "command")

    assert outcome.failed
    assert outcome.error == "RuntimeError: disk on fire"
    assert outcome.run_id is not None
    lost = [r for r in caplog.records if getattr(r, "event", "") == "maintenance.run.record_failed"]
    assert [r.event_fields for r in lost] == [{"task": "demo", "run": outcome.run_id}]
