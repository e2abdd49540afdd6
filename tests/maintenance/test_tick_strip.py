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


def test_one_query_per_task_whatever_the_runs(demo):
    for i in range(40):
        record(T0 + timedelta(minutes=5 * i), RunStatus.SUCCEEDED)
    with CaptureQueriesContext(connection) as few:
        latest_ticks(registry.get("demo"), T0 + timedelta(hours=4))
    assert len(few.captured_queries) <= 2
