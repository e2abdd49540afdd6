"""One cron grammar: the system check (E002), every schedule export and the tick
arithmetic read the same expressions the same way, and agree with cronsim (Debian cron's
rules) on when each fires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from cronsim import CronSim
from django.core.management import CommandError, call_command

from maintenance.checks.settings import task_setting_errors
from maintenance.schedules import cron

VALID = [
    "*/10 * * * *",
    "0 * * * *",
    "0 9 * * mon-fri",
    "15 3 1 jan,jul *",
    "0 0 * * 7",
    "0-30/5 * * * *",
    "5/20 */3 * * *",
    "0 0 29 2 *",  # a leap day: fires every four years
    "0 0 30 2 1",  # day 30 or Monday: fires on Mondays in February
    "*/59 * * * *",
    "0 0 1 * 1",
]
INVALID = [
    "61 * * * *",
    "*/0 * * * *",
    "* * * *",
    "0 24 * * *",
    "5-1 * * * *",
    "@hourly",
    "0 0 0 * *",
    "*/90 * * * *",  # a step past the field: cron would fire hourly, not every 90 minutes
    "0 */25 * * *",
    "x * * * *",
]
NEVER_FIRING = ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2 *"]
SINCE = datetime(2027, 3, 1, 12, 34, 56, tzinfo=UTC)


def check_accepts(settings, expression: str) -> bool:
    settings.PKCE_CLEANUP_CRON = expression
    return not [error for error in task_setting_errors() if "PKCE_CLEANUP_CRON" in error.msg]


def export_accepts(settings, expression: str, format: str) -> bool:
    settings.PKCE_CLEANUP_CRON = expression
    try:
        call_command("maintenance_schedule", "--format", format, stdout=StringIO())
    except CommandError:
        return False
    return True


@pytest.mark.parametrize("expression", VALID + INVALID + NEVER_FIRING)
@pytest.mark.parametrize("format", ["systemd", "kubernetes", "crontab"])
def test_the_check_and_every_export_agree(settings, expression, format):
    expected = expression in VALID
    assert check_accepts(settings, expression) is expected
    assert export_accepts(settings, expression, format) is expected


@pytest.mark.parametrize("expression", VALID)
def test_ticks_are_the_instants_cron_fires_at(expression):
    schedule = cron.parse(expression)
    oracle = CronSim(expression, SINCE.replace(tzinfo=None))
    ticks = schedule.ticks(SINCE)
    for _ in range(20):
        assert next(ticks).replace(tzinfo=None) == next(oracle)


@pytest.mark.parametrize("expression", VALID)
def test_the_current_tick_is_the_latest_at_or_before_now(expression):
    schedule = cron.parse(expression)
    current = schedule.latest_tick(SINCE)
    assert current <= SINCE < schedule.next_tick(current)
    assert schedule.latest_tick(current) == current  # a tick is its own current tick


def test_the_gap_between_ticks():
    assert cron.parse("*/10 * * * *").typical_gap() == timedelta(minutes=10)
    assert cron.parse("0 * * * *").typical_gap() == timedelta(hours=1)
    assert cron.parse("0 9 * * mon-fri").typical_gap() == timedelta(days=1)
