"""Each tick of a task's strip is classified from the run log, with an injected clock."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from maintenance import registry
from maintenance.models import RunStatus, TaskRun
from maintenance.observe.ticks import latest_ticks

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # demo ticks every 5 minutes


def record(tick, status, late_ms=400, trigger="scheduler"):
    return TaskRun.objects.create(
        task="demo",
        trigger=trigger,
        status=status,
        tick=tick,
        started_at=tick + timedelta(milliseconds=late_ms),
        late_ms=late_ms,
    )


def statuses(now, count=6):
    return [t.status for t in latest_ticks(registry.get("demo"), now, count)]


def test_every_classification(demo):
    record(T0, RunStatus.SUCCEEDED)
    record(T0 + timedelta(minutes=5), RunStatus.SUCCEEDED, late_ms=60_000)
    record(T0 + timedelta(minutes=10), RunStatus.FAILED)
    record(T0 + timedelta(minutes=15), RunStatus.MISSED)
    record(T0 + timedelta(minutes=20), RunStatus.SKIPPED)
    now = T0 + timedelta(minutes=30, seconds=5)
    assert statuses(now, 8) == [
        "",
        "served",
        "late",
        "failed",
        "missed",
        "skipped",
        "missed",
        "pending",
    ]
    # unserved, deadline passed, no missed row written yet: still missed
    assert statuses(now + timedelta(minutes=5), 2) == ["missed", "pending"]


def test_a_fixed_number_of_queries_per_task_whatever_the_runs(demo):
    """A fleet's triggers leave many skips per tick; the strip reads the deciding rows, one
    row per tick left open (the skipped ones) and the first run: three queries."""
    for i in range(40):
        tick = T0 + timedelta(minutes=5 * i)
        record(tick, RunStatus.SUCCEEDED if i % 4 else RunStatus.FAILED)
        for _ in range(5):
            record(tick, RunStatus.SKIPPED, trigger="cron")
    for i in range(40, 44):
        record(T0 + timedelta(minutes=5 * i), RunStatus.SKIPPED, trigger="http")

    with CaptureQueriesContext(connection) as few:
        ticks = latest_ticks(registry.get("demo"), T0 + timedelta(hours=4))

    assert len(few.captured_queries) <= 3
    assert ticks[0].at == T0 + timedelta(minutes=5)  # the 48 ticks up to 14:00
    expected = ["failed" if i % 4 == 0 else "served" for i in range(1, 40)] + ["skipped"] * 4
    assert [t.status for t in ticks[:43]] == expected
    assert {t.run.trigger for t in ticks[39:43]} == {"http"}


def test_status_speaks_in_ticks_and_a_served_tick_is_healthy(demo):
    from maintenance.observe.status import task_status

    record(T0, RunStatus.SUCCEEDED, late_ms=400)
    status = task_status(registry.get("demo"), T0 + timedelta(minutes=2), paused={})
    assert status["healthy"] is True
    assert status["lastTick"] == "2026-12-02T10:00:00Z"
    assert status["lastTickStatus"] == "served"
    assert status["nextTick"] == "2026-12-02T10:05:00Z"
    assert status["lateMs"] == 400
    assert status["intervalSeconds"] == 300


def test_next_due_is_a_tick_of_the_schedule_not_an_interval_after_the_last_run(demo):
    from maintenance.observe.status import task_status

    record(T0, RunStatus.SUCCEEDED, late_ms=180_000)  # served three minutes late
    status = task_status(registry.get("demo"), T0 + timedelta(minutes=4), paused={})
    assert status["nextDue"] == "2026-12-02T10:05:00Z"  # not 10:08, five minutes on

    status = task_status(registry.get("demo"), T0 + timedelta(minutes=5, seconds=30), paused={})
    assert status["nextDue"] == "2026-12-02T10:05:00Z"  # the current tick, not yet taken

    record(T0 + timedelta(minutes=5), RunStatus.RUNNING)
    status = task_status(registry.get("demo"), T0 + timedelta(minutes=5, seconds=40), paused={})
    assert status["nextDue"] == "2026-12-02T10:10:00Z"  # taken: the next one


def test_an_smtp_failure_after_an_earlier_success_is_unhealthy(demo):
    from maintenance.observe.status import task_status

    record(T0, RunStatus.SUCCEEDED)
    record(T0 + timedelta(minutes=5), RunStatus.FAILED)
    status = task_status(registry.get("demo"), T0 + timedelta(minutes=6), paused={})
    assert status["healthy"] is False
    assert status["lastTickStatus"] == "failed"


def test_an_unserved_tick_past_its_deadline_is_missed_and_unhealthy(demo):
    from maintenance.observe.status import task_status

    record(T0, RunStatus.SUCCEEDED)
    status = task_status(registry.get("demo"), T0 + timedelta(minutes=11), paused={})
    assert status["healthy"] is False
    assert status["missedTicks24h"] == 1
