"""Scheduled triggers serve the schedule's current tick, once; manual runs always run.

The clock is injected (`maintenance.runs.clock.now`), so no test waits for a tick."""

from __future__ import annotations

import json
import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import DatabaseError
from django.utils import timezone

from maintenance import registry
from maintenance.checks import configuration_error
from maintenance.models import RunStatus, TaskRun, Trigger
from maintenance.outcome import TaskFailed
from maintenance.runs import runner
from maintenance.runs.runner import run_task
from maintenance.schedules import cron
from maintenance.views import TaskView
from tests.factories import fake_task, held_by

pytestmark = pytest.mark.django_db(transaction=True)

# A */5 tick of today (the run log's retention prunes runs of long ago).
TICK = cron.parse("*/5 * * * *").latest_tick(timezone.now()) - timedelta(hours=1)
LABEL, ISO = TICK.strftime("%H:%M UTC"), TICK.strftime("%Y-%m-%dT%H:%M:00Z")


@pytest.fixture
def demo(isolated_registry):
    return registry.register(fake_task("demo"))


def test_redundant_triggers_of_one_tick_give_one_run(at, demo):
    first = run_task("demo", Trigger.SCHEDULER)
    at(TICK + timedelta(seconds=40))
    second = run_task("demo", Trigger.CRON)
    third = run_task("demo", Trigger.HTTP)

    assert first.status == RunStatus.SUCCEEDED
    assert second.skipped and third.skipped
    expected = f"Skipped: tick {LABEL} already served by run {first.run_id} (scheduler)"
    assert second.message == expected
    assert second.body()["tick"] == ISO
    assert second.body()["success"] is True
    served = TaskRun.objects.get(pk=first.run_id)
    assert served.tick == TICK and served.late_ms == 3000


def test_manual_runs_always_run_with_no_tick(at, demo):
    run_task("demo", Trigger.SCHEDULER)
    manual = [run_task("demo", Trigger.COMMAND), run_task("demo", Trigger.HTTP, force=True)]
    assert [o.status for o in manual] == [RunStatus.SUCCEEDED] * 2
    assert all(TaskRun.objects.get(pk=o.run_id).tick is None for o in manual)


def test_a_failed_tick_is_retried_by_the_next_trigger_of_that_tick(at, isolated_registry):
    attempts = []

    def flaky(**options):
        attempts.append(1)
        if len(attempts) == 1:
            raise TaskFailed("SMTP down", {"count": 0})
        return {"count": 1}

    registry.register(fake_task("demo", flaky))
    assert run_task("demo", Trigger.CRON).failed
    retried = run_task("demo", Trigger.SCHEDULER)
    assert retried.status == RunStatus.SUCCEEDED
    assert run_task("demo", Trigger.HTTP).skipped


def test_a_database_error_after_the_claim_fails_the_run_and_frees_the_tick(at, demo, monkeypatch):
    """An error between the claim and the task function (here the missed-tick
    bookkeeping) must not leave the tick looking served by a run that never ran."""
    outage = [DatabaseError("server closed the connection unexpectedly")]
    record_missed = runner._record_missed

    def flaky(task, tick):
        if outage:
            raise outage.pop()
        return record_missed(task, tick)

    monkeypatch.setattr(runner, "_record_missed", flaky)
    first = run_task("demo", Trigger.CRON)

    assert first.failed and "server closed the connection" in first.error
    claim = TaskRun.objects.get(pk=first.run_id)
    assert (claim.status, claim.tick) == (RunStatus.FAILED, TICK)
    assert run_task("demo", Trigger.SCHEDULER).status == RunStatus.SUCCEEDED


def test_the_next_tick_runs_again(at, demo):
    run_task("demo", Trigger.SCHEDULER)
    at(TICK + timedelta(minutes=5, seconds=1))
    later = run_task("demo", Trigger.SCHEDULER)
    assert later.status == RunStatus.SUCCEEDED
    assert TaskRun.objects.get(pk=later.run_id).tick == TICK + timedelta(minutes=5)


def test_http_force_runs_and_is_not_a_task_option(at, demo, rf, settings):
    settings.DEBUG = True
    run_task("demo", Trigger.SCHEDULER)
    view = TaskView.as_view(task_name="demo")
    skipped = json.loads(view(rf.get("/demo")).content)
    forced = json.loads(view(rf.get("/demo", {"force": "1"})).content)
    assert skipped["skipped"] is True and skipped["tick"] == ISO
    assert forced["success"] is True and "skipped" not in forced


def test_a_late_trigger_past_the_starting_deadline_skips(at, demo, settings):
    settings.DEMO_STARTING_DEADLINE_SECONDS = "30"
    at(TICK + timedelta(seconds=31))
    late = run_task("demo", Trigger.CRON)
    assert late.skipped
    assert late.message == (
        f"Skipped: tick {LABEL} missed its starting deadline (DEMO_STARTING_DEADLINE_SECONDS=30)"
    )
    assert run_task("demo", Trigger.COMMAND).status == RunStatus.SUCCEEDED


def test_interval_seconds_is_retired(demo, settings):
    settings.DEMO_INTERVAL_SECONDS = "300"
    assert "DEMO_INTERVAL_SECONDS is retired: set DEMO_CRON instead" in configuration_error()


def no_such_pid() -> int:
    """A pid no process can have: past the kernel's pid_max (a finished process's pid may
    be handed to a new one)."""
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


def test_a_dead_runner_on_this_host_frees_the_task_at_once(at, demo):
    stale = held_by(
        "demo", socket.gethostname(), no_such_pid(), timedelta(hours=1), tick=TICK, started_at=TICK
    )
    outcome = run_task("demo", Trigger.SCHEDULER)
    assert outcome.status == RunStatus.SUCCEEDED
    stale.refresh_from_db()
    assert stale.status == RunStatus.FAILED and "Runner stopped" in stale.error


def test_a_live_run_of_another_tick_holds_the_task_and_is_named(at, demo):
    """A run still going from the tick before holds the task (one running run per task):
    this tick's trigger and a manual run both skip naming it, and it stays running."""
    here = {"host": socket.gethostname(), "pid": os.getpid()}
    earlier = TICK - timedelta(minutes=5)
    going = held_by("demo", **here, lease=timedelta(minutes=1), tick=earlier, started_at=earlier)

    outcomes = [run_task("demo", Trigger.CRON), run_task("demo", Trigger.COMMAND)]

    assert all(o.skipped and o.success for o in outcomes)
    holder = f"(host {here['host']}, pid {here['pid']}, since "
    assert all("another runner is already running demo " + holder in o.message for o in outcomes)
    going.refresh_from_db()
    assert going.status == RunStatus.RUNNING


def test_missed_ticks_after_a_gap_get_rows_and_one_catch_up_run(at, demo):
    run_task("demo", Trigger.SCHEDULER)
    at(TICK + timedelta(minutes=20, seconds=2))  # ticks +5, +10, +15 passed unserved
    catch_up = run_task("demo", Trigger.CRON)
    again = run_task("demo", Trigger.SCHEDULER)

    assert catch_up.status == RunStatus.SUCCEEDED and again.skipped
    assert catch_up.result["missedTicks"] == 3
    missed = TaskRun.objects.filter(status=RunStatus.MISSED).order_by("tick")
    assert [r.tick for r in missed] == [TICK + timedelta(minutes=m) for m in (5, 10, 15)]


def test_ticks_before_the_first_run_are_never_missed(at, demo):
    first = run_task("demo", Trigger.SCHEDULER)
    assert "missedTicks" not in first.result
    assert not TaskRun.objects.filter(status=RunStatus.MISSED).exists()
