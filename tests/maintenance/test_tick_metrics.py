"""/metrics on schedule ticks: missed ticks counted for good, the latest lateness, and the
schedule's own gap as `interval_seconds`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from maintenance import registry
from maintenance.models import TaskRun, Trigger
from maintenance.runs import retention, runner
from maintenance.runs.runner import run_task
from maintenance.schedules import cron
from tests.maintenance.test_metrics import labels, runs_total
from tests.maintenance.test_metrics_monotonic import scrape

pytestmark = pytest.mark.django_db

# A tick of pkce_cleanup's default `*/10` schedule, an hour back (the `at` clock fixture).
TICK = cron.parse("*/10 * * * *").latest_tick(timezone.now()) - timedelta(hours=1)


def tick_run(status: str, *, tick_age: timedelta, late_ms: int | None, task="pkce_cleanup"):
    tick = timezone.now() - tick_age
    started = tick + timedelta(milliseconds=late_ms or 0)
    return TaskRun.objects.create(
        task=task,
        trigger="cron",
        status=status,
        tick=tick,
        late_ms=late_ms,
        started_at=started,
        finished_at=None if status == "missed" else started + timedelta(seconds=1),
    )


def missed_ticks(figures, task="pkce_cleanup") -> float:
    # The text parser names a counter family without its `_total` suffix.
    return figures["pluggedin_maintenance_missed_ticks"][labels(task=task)]


def test_missed_ticks_start_at_zero_and_count_missed_runs(client, cron_secret):
    assert missed_ticks(scrape(client)) == 0
    assert missed_ticks(scrape(client), "scheduled_emails") == 0

    tick_run("missed", tick_age=timedelta(minutes=30), late_ms=None)
    tick_run("missed", tick_age=timedelta(minutes=20), late_ms=None)
    tick_run("succeeded", tick_age=timedelta(minutes=10), late_ms=800)

    assert missed_ticks(scrape(client)) == 2
    assert missed_ticks(scrape(client), "scheduled_emails") == 0


def test_missed_ticks_never_go_down_when_their_rows_are_pruned(client, cron_secret, settings):
    settings.MAINTENANCE_RUN_RETENTION_DAYS = 30
    tick_run("missed", tick_age=timedelta(days=40), late_ms=None)
    tick_run("missed", tick_age=timedelta(minutes=20), late_ms=None)
    assert missed_ticks(scrape(client)) == 2

    assert retention.prune_run_log() == 1
    assert missed_ticks(scrape(client)) == 2
    tick_run("missed", tick_age=timedelta(days=50), late_ms=None)  # written late, old tick
    retention.prune_run_log()
    assert missed_ticks(scrape(client)) == 3


@pytest.mark.django_db(transaction=True)
def test_more_missed_ticks_than_rows_still_count_every_one(client, cron_secret, at):
    """A downtime of 150 ticks: the catch-up run writes the latest 100 as rows, and both
    counters count all 150. The runner's clock is injected (3 s past `TICK`), so no real
    tick falls between the downtime's arithmetic and the run."""
    schedule = registry.get("pkce_cleanup").cron_schedule
    assert schedule.latest_tick(TICK + timedelta(seconds=3)) == TICK
    before_downtime = TICK - 151 * schedule.typical_gap()
    TaskRun.objects.create(
        task="pkce_cleanup", trigger="cron", status="succeeded", tick=before_downtime,
        started_at=before_downtime, finished_at=before_downtime,
    )  # fmt: skip

    catch_up = run_task("pkce_cleanup", Trigger.CRON)

    assert catch_up.result["missedTicks"] == 150
    assert TaskRun.objects.filter(status="missed").count() == runner.MAX_MISSED_ROWS
    figures = scrape(client)
    assert missed_ticks(figures) == 150
    assert runs_total(figures, "pkce_cleanup", "scheduler", "missed") == 150


def test_lateness_is_that_of_the_latest_ticked_success(client, cron_secret):
    figures = scrape(client)
    assert (
        labels(task="pkce_cleanup")
        not in figures["pluggedin_maintenance_last_tick_lateness_seconds"]
    )

    tick_run("succeeded", tick_age=timedelta(minutes=30), late_ms=4000)
    tick_run("succeeded", tick_age=timedelta(minutes=20), late_ms=1500)
    tick_run("failed", tick_age=timedelta(minutes=10), late_ms=9000)
    tick_run("missed", tick_age=timedelta(minutes=5), late_ms=None)
    TaskRun.objects.create(
        task="pkce_cleanup", trigger="command", status="succeeded", started_at=timezone.now()
    )  # a manual run: no tick, no lateness

    lateness = scrape(client)["pluggedin_maintenance_last_tick_lateness_seconds"]
    assert lateness[labels(task="pkce_cleanup")] == 1.5
    assert labels(task="scheduled_emails") not in lateness


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [
        ("*/10 * * * *", "600"),
        ("0 * * * *", "3600"),
        ("30 4 * * *", "86400"),
        ("*/25 * * * *", "600"),
    ],
)
def test_interval_seconds_is_the_schedules_typical_gap(
    client, cron_secret, settings, schedule, gap
):
    settings.PKCE_CLEANUP_CRON = schedule
    settings.PKCE_CLEANUP_INTERVAL_SECONDS = "7"  # the in-process interval plays no part

    info = scrape(client)["pluggedin_maintenance_task_info"]

    assert info[labels(task="pkce_cleanup", schedule=schedule, interval_seconds=gap)] == 1
