"""One cron grammar: the system check (E002), every schedule export and the tick
arithmetic read the same expressions the same way: cronsim's reading, less what Debian's
cron refuses, with Debian cron's rule for the two day fields."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
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
    # cronsim reads these; Debian's cron does not
    "0 0 L * *",
    "0 0 l * *",
    "0 0 LW * *",
    "0 0 15W * *",
    "0 0 * * 5L",
    "0 0 * * MON#2",
    "0 0 ? * *",
    "0 0 * * ?",
    "0 0 0 * * *",  # six fields: seconds first
    "@reboot",
    "@daily",
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
@pytest.mark.parametrize("format", ["systemd", "kubernetes", "crontab", "github-actions", "vercel"])
def test_the_check_and_every_export_agree(settings, expression, format):
    expected = expression in VALID
    assert check_accepts(settings, expression) is expected
    assert export_accepts(settings, expression, format) is expected


def utc(*moments: str) -> list[datetime]:
    return [datetime.fromisoformat(moment).replace(tzinfo=UTC) for moment in moments]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # both day fields restricted: the 1st of the month OR a Monday (Debian's rule)
        ("0 0 1 * 1", utc("2027-03-08", "2027-03-15", "2027-03-22", "2027-03-29", "2027-04-01")),
        ("0 0 1-7 * 1", utc("2027-03-02", "2027-03-03", "2027-03-04", "2027-03-05")),
        # either field starting with `*`: both must match (odd days that are Mondays)
        ("0 0 */2 * 1", utc("2027-03-15", "2027-03-29", "2027-04-05", "2027-04-19")),
        ("0 0 1 * *", utc("2027-04-01", "2027-05-01")),
        ("0 0 30 2 1", utc("2028-02-07", "2028-02-14", "2028-02-21", "2028-02-28")),
        ("0 12 * JAN,jul sun", utc("2027-07-04 12:00", "2027-07-11 12:00")),
        ("5/20 */3 * * *", utc("2027-03-01 12:45", "2027-03-01 15:05", "2027-03-01 15:25")),
        ("0 0 * * 7", utc("2027-03-07", "2027-03-14")),
    ],
)
def test_ticks_are_the_instants_debian_cron_fires_at(expression, expected):
    ticks = cron.parse(expression).ticks(SINCE)
    assert [next(ticks) for _ in expected] == expected


def test_the_current_tick_of_a_rare_schedule_is_found_going_back():
    leap_day = cron.parse("0 0 29 2 *")
    assert leap_day.latest_tick(SINCE) == datetime(2024, 2, 29, tzinfo=UTC)
    assert leap_day.next_tick(SINCE) == datetime(2028, 2, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "named"),
    [
        ("0 0 L * *", "day of month 'L'"),
        ("0 0 * * MON#2", "day of week 'MON#2'"),
        ("*/90 * * * *", "minute step in '*/90'"),
        ("0 0 0 * * *", "has 6 fields, not five"),
        ("@reboot", "nickname (@reboot)"),
        ("0 0 31 2 *", "never fires"),
    ],
)
def test_the_refusal_names_the_field_and_why(expression, named):
    with pytest.raises(cron.CronError, match=re.escape(named)):
        cron.parse(expression)


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
