"""A web host whose clock runs minutes fast reports the same health as every other host:
status and `/metrics` judge ticks and deadlines at the database's clock (SPEC "Clock"), so
the next tick's deadline has not passed for it before any trigger could have served it.
PostgreSQL only, as `test_skewed_clock.py`: SQLite's clock is each process's own."""

from __future__ import annotations

import json
import re

import pytest

from maintenance import registry
from maintenance.models import RunStatus, TaskRun, Trigger
from maintenance.runs.clock import database_now
from tests.maintenance.test_skewed_clock import skewed
from tests.processes import MANAGE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

# pkce_cleanup ticks every 10 minutes; with a one-minute starting deadline, a clock 12
# minutes fast is always past the next tick's deadline.
DEADLINE = "PKCE_CLEANUP_STARTING_DEADLINE_SECONDS"
AHEAD = "+12m"
TRUE = "+0"  # the same faketime, unshifted
SCRAPE = (
    "from maintenance.observe.metrics import exposition; "
    "print(exposition('text/plain')[0].decode())"
)
HEALTHY_GAUGE = re.compile(r'^pluggedin_maintenance_healthy\{task="(\w+)"\} (\S+)$', re.M)


@pytest.fixture
def served_tick():
    """pkce_cleanup's latest tick (on the database's clock) served by a success."""
    now = database_now()
    tick = registry.get("pkce_cleanup").cron_schedule.latest_tick(now)
    TaskRun.objects.create(
        task="pkce_cleanup", trigger=Trigger.CRON, status=RunStatus.SUCCEEDED, tick=tick,
        started_at=now, finished_at=now, duration_ms=1, late_ms=0,
    )  # fmt: skip


def health(offset: str) -> dict[str, bool]:
    """Each task's `healthy` as `maintenance_status --json` says it in a process whose
    clock runs `offset` off."""
    args = [MANAGE, "maintenance_status", "--json"]
    done = skewed(offset, *args, **{DEADLINE: "60"})
    assert done.stdout, done.stderr
    return {name: task["healthy"] for name, task in json.loads(done.stdout)["tasks"].items()}


def scraped_health(offset: str) -> dict[str, str]:
    done = skewed(offset, MANAGE, "shell", "--no-imports", "-c", SCRAPE, **{DEADLINE: "60"})
    assert done.returncode == 0, done.stderr
    return dict(HEALTHY_GAUGE.findall(done.stdout))


def test_status_from_a_host_twelve_minutes_fast_matches_the_database_clock(served_tick):
    fast, true = health(AHEAD), health(TRUE)

    assert true["pkce_cleanup"] is True
    assert fast == true


def test_metrics_from_a_host_twelve_minutes_fast_match_the_database_clock(served_tick):
    fast, true = scraped_health(AHEAD), scraped_health(TRUE)

    assert true["pkce_cleanup"] == "1.0"
    assert fast == true
