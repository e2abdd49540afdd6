"""`check --deploy` warns (maintenance.W203) when cron, reading crontab times as this
host's local wall-clock times, would fire a task at other instants than its UTC ticks."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from maintenance.checks.crontab import first_local_misfire
from maintenance.schedules.cron import parse
from tests.processes import run_manage

START = datetime(2026, 12, 2, 10, 15, tzinfo=UTC)


def deploy_check(**env: str) -> str:
    result = run_manage("check", "--deploy", **env)
    return result.stdout + result.stderr


def w203_line(output: str) -> str:
    lines = [line for line in output.splitlines() if "maintenance.W203" in line]
    return lines[0] if lines else ""


@pytest.mark.django_db(transaction=True)
def test_a_half_hour_zone_warns_for_the_hourly_tasks_only():
    output = deploy_check(TZ="Asia/Kolkata")

    line = w203_line(output)
    assert "Asia/Kolkata" in line
    assert "scheduled_emails" in line and "oauth_session_cleanup" in line
    assert "pkce_cleanup" not in line  # */10 fires at the same instants at +05:30
    assert "timedatectl set-timezone Etc/UTC" in output


@pytest.mark.django_db(transaction=True)
def test_no_warning_on_a_utc_host():
    assert w203_line(deploy_check(TZ="UTC")) == ""


@pytest.mark.parametrize(
    ("schedule", "zone", "misfires"),
    [
        ("*/10 * * * *", "Asia/Kolkata", False),
        ("0 * * * *", "Asia/Kolkata", True),
        ("0 * * * *", "Europe/London", False),  # whole-hour offsets, summer or winter
        ("30 4 * * *", "Europe/London", True),  # 03:30 UTC in summer
        ("30 4 * * *", "Etc/UTC", False),
        ("*/10 * * * *", "Asia/Kathmandu", True),  # +05:45
    ],
)
def test_ticks_compared_as_local_wall_clock_times(schedule, zone, misfires):
    first = first_local_misfire(parse(schedule), START, ZoneInfo(zone))

    assert (first is not None) is misfires
