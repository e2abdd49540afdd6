"""`pluggedin_maintenance_runs_total` never goes down when the run log is pruned (issue 21):
every finished run is counted once, whatever its `started_at`, before its row may go."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from maintenance.models import RunTally, TaskRun
from maintenance.runs import retention
from tests.conftest import SECRET
from tests.maintenance.test_metrics import parse, runs_total

pytestmark = pytest.mark.django_db

STATUSES = ("succeeded", "failed", "skipped", "missed")


def scrape(client) -> dict[str, dict[tuple, float]]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    assert response.status_code == 200, response.content
    return parse(response.content.decode())


def add_runs(count: int, *, age: timedelta, status: str = "succeeded", task: str = "pkce_cleanup"):
    started = timezone.now() - age
    TaskRun.objects.bulk_create(
        TaskRun(
            task=task,
            trigger="command",
            status=status,
            started_at=started,
            finished_at=started + timedelta(seconds=1),
        )
        for _ in range(count)
    )


def assert_no_series_went_down(before, after) -> None:
    runs_before, runs_after = (
        before["pluggedin_maintenance_runs"],
        after["pluggedin_maintenance_runs"],
    )
    for series, value in runs_before.items():
        assert runs_after.get(series, 0) >= value, series


@pytest.fixture(autouse=True)
def retention_of_30_days(settings, cron_secret):
    settings.MAINTENANCE_RUN_RETENTION_DAYS = 30
    settings.MAINTENANCE_DELETE_BATCH_SIZE = 3


def test_rows_backdated_after_a_fold_stay_counted_when_pruned(client):
    add_runs(4, age=timedelta(minutes=5))
    retention.fold_run_counts()
    assert runs_total(scrape(client), "pkce_cleanup", "command", "succeeded") == 4

    two = TaskRun.objects.order_by("pk").values_list("pk", flat=True)[:2]
    TaskRun.objects.filter(pk__in=list(two)).update(started_at=timezone.now() - timedelta(days=400))
    add_runs(1, age=timedelta(minutes=1))
    assert retention.prune_run_log() == 2

    assert TaskRun.objects.count() == 3
    assert runs_total(scrape(client), "pkce_cleanup", "command", "succeeded") == 5


def test_pruning_runs_of_every_status_never_lowers_a_series(client):
    for status in STATUSES:
        add_runs(3, age=timedelta(days=400), status=status)
        add_runs(2, age=timedelta(minutes=5), status=status)
    before = scrape(client)
    for status in STATUSES:
        assert runs_total(before, "pkce_cleanup", "command", status) == 5

    assert retention.prune_run_log() == 3 * len(STATUSES)
    after = scrape(client)

    assert_no_series_went_down(before, after)
    assert after["pluggedin_maintenance_runs"] == before["pluggedin_maintenance_runs"]
    add_runs(1, age=timedelta(seconds=5), status="failed")
    assert runs_total(scrape(client), "pkce_cleanup", "command", "failed") == 6


def test_a_missed_row_written_late_for_an_old_tick_is_counted_then_pruned(client):
    add_runs(2, age=timedelta(days=40))
    retention.prune_run_log()
    before = scrape(client)
    assert runs_total(before, "pkce_cleanup", "command", "succeeded") == 2

    add_runs(1, age=timedelta(days=45), status="missed")  # its tick, long past retention
    assert retention.prune_run_log() == 1

    after = scrape(client)
    assert_no_series_went_down(before, after)
    assert runs_total(after, "pkce_cleanup", "command", "missed") == 1
    assert TaskRun.objects.count() == 0


def test_a_run_still_running_is_kept_until_past_retention_and_never_counted(client):
    TaskRun.objects.create(task="pkce_cleanup", trigger="command", started_at=timezone.now())
    TaskRun.objects.create(
        task="oauth_session_cleanup",
        trigger="command",
        started_at=timezone.now() - timedelta(days=45),
    )  # a crashed runner's row

    assert retention.prune_run_log() == 1
    assert TaskRun.objects.get().status == "running"
    assert sum(RunTally.objects.values_list("count", flat=True)) == 0


def test_a_row_that_finishes_after_the_fold_is_counted_by_the_next(client):
    run = TaskRun.objects.create(
        task="pkce_cleanup", trigger="command", started_at=timezone.now() - timedelta(days=1)
    )
    retention.prune_run_log()
    TaskRun.objects.filter(pk=run.pk).update(status="succeeded", finished_at=timezone.now())

    assert runs_total(scrape(client), "pkce_cleanup", "command", "succeeded") == 1
    retention.prune_run_log()
    assert runs_total(scrape(client), "pkce_cleanup", "command", "succeeded") == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_pruners_at_once_never_count_a_run_twice_or_lose_one(monkeypatch):
    monkeypatch.setattr(retention, "FOLD_BATCH", 40)
    for status in STATUSES:
        add_runs(150, age=timedelta(days=400), status=status)
        add_runs(100, age=timedelta(minutes=5), status=status)
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def pruner() -> None:
        try:
            start.wait()
            for _ in range(3):
                retention.prune_run_log()
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
        finally:
            connection.close()

    def late_writer() -> None:
        try:
            start.wait()
            for _ in range(20):
                add_runs(1, age=timedelta(days=400), status="missed")
        finally:
            connection.close()

    threads = [threading.Thread(target=pruner) for _ in range(2)]
    threads.append(threading.Thread(target=late_writer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    retention.prune_run_log()

    assert errors == []
    tallies = dict(RunTally.objects.values_list("status", "count"))
    assert tallies == {"succeeded": 250, "failed": 250, "skipped": 250, "missed": 270}
    assert TaskRun.objects.count() == 100 * len(STATUSES)
    assert not TaskRun.objects.filter(counted=False).exists()


@pytest.fixture
def latest_schema_after():
    """Migrate the test database back to every app's latest migration after the test,
    so the test files that follow see the whole schema."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    executor.loader.build_graph()
    assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == []


@pytest.mark.django_db(transaction=True)
def test_upgrading_keeps_the_runs_the_old_mark_had_counted_counted_once(latest_schema_after):
    before, after = (
        [("maintenance", "0006_one_run_per_tick")],
        [("maintenance", "0007_run_counted")],
    )
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    now = timezone.now()
    old.get_model("maintenance", "RunTallyMark").objects.create(
        counted_before=now - timedelta(hours=1)
    )
    old.get_model("maintenance", "RunTally").objects.create(
        task="pkce_cleanup", trigger="command", status="succeeded", count=1
    )
    run = old.get_model("maintenance", "TaskRun")
    for age, status in ((2, "succeeded"), (0, "succeeded"), (2, "running")):
        run.objects.create(
            task="pkce_cleanup",
            trigger="command",
            status=status,
            started_at=now - timedelta(hours=age, minutes=5),
        )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)

    flags = sorted(TaskRun.objects.values_list("status", "counted"))
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())  # the schema the other tests expect
    assert flags == [("running", False), ("succeeded", False), ("succeeded", True)]
    retention.fold_run_counts()
    assert RunTally.objects.get(status="succeeded").count == 2
