"""Run-log retention: the task runs prune rows older than MAINTENANCE_RUN_RETENTION_DAYS."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from maintenance.logs.log_events import RUNS_PRUNE_FAILED
from maintenance.models import TaskRun
from maintenance.runs import retention
from maintenance.runs.runner import run_task
from tests.factories import fake_task

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_throttle():
    retention.forget_last_prune()
    yield
    retention.forget_last_prune()


def old_and_recent(days: int = 30) -> tuple[TaskRun, TaskRun]:
    now = timezone.now()
    old = TaskRun.objects.create(
        task="demo",
        trigger="cron",
        status="succeeded",
        started_at=now - timedelta(days=days, minutes=1),
    )
    recent = TaskRun.objects.create(
        task="demo",
        trigger="cron",
        status="succeeded",
        started_at=now - timedelta(days=days) + timedelta(minutes=1),
    )
    return old, recent


def test_a_successful_run_prunes_rows_past_retention_and_keeps_the_rest(demo, caplog):
    _, recent = old_and_recent()
    caplog.set_level(logging.INFO, logger="maintenance")

    outcome = run_task("demo", "command")

    remaining = set(TaskRun.objects.values_list("pk", flat=True))
    assert remaining == {recent.pk, outcome.run_id}
    pruned = [r for r in caplog.records if getattr(r, "event", "") == "maintenance.runs.pruned"]
    assert pruned[0].event_fields == {"deleted": 1, "retention_days": 30}


def test_retention_days_are_configurable(settings):
    settings.MAINTENANCE_RUN_RETENTION_DAYS = 7
    _, recent = old_and_recent(days=7)

    assert retention.prune_run_log() == 1
    assert list(TaskRun.objects.values_list("pk", flat=True)) == [recent.pk]


def test_zero_keeps_every_row(settings):
    settings.MAINTENANCE_RUN_RETENTION_DAYS = 0
    old_and_recent()

    assert retention.prune_run_log() == 0
    assert TaskRun.objects.count() == 2


def test_pruning_goes_in_batches(demo, settings):
    settings.MAINTENANCE_DELETE_BATCH_SIZE = 3
    start = timezone.now() - timedelta(days=40)
    TaskRun.objects.bulk_create(
        TaskRun(task="demo", trigger="cron", status="skipped", started_at=start, finished_at=start)
        for _ in range(10)
    )

    assert retention.prune_run_log() == 10
    assert TaskRun.objects.count() == 0


def test_a_process_prunes_at_most_once_per_interval(demo):
    run_task("demo", "command")  # prunes (nothing), starts the interval
    old, _ = old_and_recent()

    run_task("demo", "command")

    assert TaskRun.objects.filter(pk=old.pk).exists()
    retention.forget_last_prune()
    run_task("demo", "command")
    assert not TaskRun.objects.filter(pk=old.pk).exists()


def test_a_failed_or_skipped_run_does_not_prune(isolated_registry):
    def broken(**options):
        raise ValueError("no")

    isolated_registry.register(fake_task("broken", func=broken))
    isolated_registry.register(fake_task("gated", gate=lambda: "off"))
    old, _ = old_and_recent()

    run_task("broken", "command")
    run_task("gated", "command")

    assert TaskRun.objects.filter(pk=old.pk).exists()


def refuse_run_log_deletes(execute, sql, params, many, context):
    """The database refuses the prune's DELETE, as it does when another writer holds the
    table for longer than the lock timeout."""
    if "DELETE FROM" in sql and "maintenance_task_runs" in sql:
        raise OperationalError("database is locked")
    return execute(sql, params, many, context)


@pytest.mark.django_db(transaction=True)
def test_a_database_error_while_pruning_never_fails_the_run(demo, caplog):
    old, _ = old_and_recent()
    caplog.set_level(logging.INFO, logger="maintenance")

    with connection.execute_wrapper(refuse_run_log_deletes):
        outcome = run_task("demo", "command")

    assert outcome.status == "succeeded", outcome.error
    assert TaskRun.objects.get(pk=outcome.run_id).status == "succeeded"
    assert TaskRun.objects.filter(pk=old.pk).exists()
    failed = [r for r in caplog.records if getattr(r, "event", "") == RUNS_PRUNE_FAILED]
    assert failed[0].levelno == logging.WARNING
    assert failed[0].event_fields == {"error": "OperationalError: database is locked"}
