"""A redundant scheduled trigger (its tick served or being served) answers in three
statements on PostgreSQL: the pause read (with the database's clock), the claim, its skip.

Every process and every crontab entry may fire at one tick; all but one find it served,
so their cost is what a busy database pays at each tick."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from maintenance import registry
from maintenance.models import RunStatus, TaskRun, Trigger
from maintenance.runs import clock
from maintenance.runs.runner import run_task
from maintenance.schedules import cron
from tests.factories import fake_task, held_by

pytestmark = pytest.mark.django_db(transaction=True)

TICK = cron.parse("*/5 * * * *").latest_tick(timezone.now()) - timedelta(hours=1)
MAX_STATEMENTS = 3


@pytest.fixture
def served_tick(monkeypatch, isolated_registry):
    """Task `demo` whose current tick a cron trigger served."""
    monkeypatch.setattr(clock, "database", lambda reading: TICK + timedelta(seconds=2))
    registry.register(fake_task("demo"))
    first = run_task("demo", Trigger.CRON)
    assert first.status == RunStatus.SUCCEEDED
    return first


@pytest.mark.postgres
@pytest.mark.parametrize("trigger", [Trigger.SCHEDULER, Trigger.CRON, Trigger.HTTP])
def test_a_redundant_trigger_costs_at_most_three_statements(served_tick, trigger):
    with CaptureQueriesContext(connection) as queries:
        outcome = run_task("demo", trigger)

    assert outcome.skipped and outcome.success
    assert len(queries) <= MAX_STATEMENTS, [q["sql"] for q in queries]
    assert outcome.message == (
        f"Skipped: tick {TICK:%H:%M} UTC already served by run {served_tick.run_id} (cron)"
    )


def test_the_early_skip_is_recorded_like_any_skip(served_tick):
    outcome = run_task("demo", Trigger.SCHEDULER)

    skip = TaskRun.objects.get(pk=outcome.run_id)
    assert (skip.status, skip.trigger, skip.tick) == (RunStatus.SKIPPED, "scheduler", TICK)
    assert skip.result == {"reason": outcome.message}
    assert skip.finished_at is not None and skip.pid is not None
    assert TaskRun.objects.filter(status=RunStatus.SUCCEEDED).count() == 1


@pytest.mark.postgres
def test_a_tick_being_served_by_a_live_runner_answers_early_too(monkeypatch, isolated_registry):
    monkeypatch.setattr(clock, "database", lambda reading: TICK + timedelta(seconds=2))
    registry.register(fake_task("demo"))
    here = {"host": socket.gethostname(), "pid": os.getpid()}
    running = held_by("demo", **here, lease=timedelta(minutes=1), tick=TICK)

    with CaptureQueriesContext(connection) as queries:
        outcome = run_task("demo", Trigger.SCHEDULER)

    assert outcome.skipped
    assert (
        outcome.message
        == f"Skipped: tick {TICK:%H:%M} UTC is being served by run {running.pk} (cron)"
    )
    assert len(queries) <= MAX_STATEMENTS


@pytest.mark.postgres
def test_a_trigger_behind_a_run_of_another_tick_answers_in_three_statements(
    monkeypatch, isolated_registry
):
    """One running run per task: a run of the tick before still holds it, so this tick's
    trigger skips naming that run, at the same cost."""
    monkeypatch.setattr(clock, "database", lambda reading: TICK + timedelta(seconds=2))
    registry.register(fake_task("demo"))
    earlier = TICK - timedelta(minutes=5)
    held_by("demo", "web-2", 4242, lease=timedelta(minutes=1), tick=earlier, started_at=earlier)

    with CaptureQueriesContext(connection) as queries:
        outcome = run_task("demo", Trigger.CRON)

    assert outcome.skipped and outcome.success
    assert "another runner is already running demo (host web-2, pid 4242, since " in outcome.message
    assert len(queries) <= MAX_STATEMENTS, [q["sql"] for q in queries]
