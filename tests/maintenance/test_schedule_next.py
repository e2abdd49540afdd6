"""`maintenance_schedule --next N [--from ISO8601] [TASK ...]`: when each task fires next,
read from the schedule in force alone, never from the database (tests without the
`django_db` mark would fail on any query, those with it count none)."""

from __future__ import annotations

from datetime import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from maintenance.runs import clock
from tests.processes import run_manage

FROM = "2026-12-02T10:15:00Z"


def next_ticks(*args: str) -> list[str]:
    out = StringIO()
    call_command("maintenance_schedule", *args, stdout=out)
    return out.getvalue().splitlines()


@pytest.mark.django_db
def test_next_ticks_of_one_task_after_an_instant_without_the_database(
    django_assert_num_queries,
):
    with django_assert_num_queries(0):
        lines = next_ticks("--next", "3", "--from", FROM, "pkce_cleanup")

    assert lines == [
        "pkce_cleanup\t2026-12-02T10:20:00Z",
        "pkce_cleanup\t2026-12-02T10:30:00Z",
        "pkce_cleanup\t2026-12-02T10:40:00Z",
    ]


def test_every_declared_task_when_none_is_named_each_on_its_schedule_in_force(settings):
    settings.SCHEDULED_EMAILS_CRON = "30 4 * * 1"  # Mondays 04:30; 2026-12-02 is a Wednesday

    lines = next_ticks("--next", "2", "--from", FROM)

    assert lines == [
        "pkce_cleanup\t2026-12-02T10:20:00Z",
        "pkce_cleanup\t2026-12-02T10:30:00Z",
        "scheduled_emails\t2026-12-07T04:30:00Z",
        "scheduled_emails\t2026-12-14T04:30:00Z",
        "oauth_session_cleanup\t2026-12-02T11:00:00Z",
        "oauth_session_cleanup\t2026-12-02T12:00:00Z",
    ]


def test_from_is_exclusive_and_an_offset_is_converted_to_utc():
    assert next_ticks("--next", "1", "--from", "2026-12-02T10:20:00Z", "pkce_cleanup") == [
        "pkce_cleanup\t2026-12-02T10:30:00Z"
    ]
    assert next_ticks("--next", "1", "--from", "2026-12-02T15:50:00+05:30", "pkce_cleanup") == [
        "pkce_cleanup\t2026-12-02T10:30:00Z"
    ]
    # no offset: UTC
    assert next_ticks("--next", "1", "--from", "2026-12-02T10:20:00", "pkce_cleanup") == [
        "pkce_cleanup\t2026-12-02T10:30:00Z"
    ]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-12-02T10:19:59.999999+00:00", "2026-12-02T10:20:00Z"),
        ("2026-12-02T10:20:00+00:00", "2026-12-02T10:30:00Z"),
    ],
)
def test_without_from_the_ticks_follow_now(monkeypatch, now, expected):
    """The clock the runner reads (`maintenance.runs.clock`), pinned on either side of a
    tick, so no real `*/10` boundary can fall inside the test."""
    monkeypatch.setattr(clock, "now", lambda: datetime.fromisoformat(now))

    assert next_ticks("--next", "1", "pkce_cleanup") == [f"pkce_cleanup\t{expected}"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--next", "0"], "--next wants 1 to"),
        (["--next", "-2"], "--next wants 1 to"),
        (["--next", "three"], "--next wants a whole number"),
        (["--next", "2", "--from", "yesterday"], "--from wants an ISO 8601 instant"),
        (["--next", "2", "pkce_cleanup", "no_such_task"], "Unknown task 'no_such_task'"),
        (["--format", "crontab", "pkce_cleanup"], "TASK and --from go with --next"),
    ],
)
@pytest.mark.django_db
def test_bad_requests_fail_with_one_line(args, message, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(CommandError) as error:
        next_ticks(*args)

    assert message in str(error.value) and "\n" not in str(error.value)


def test_next_and_format_are_alternatives():
    with pytest.raises(CommandError, match="not allowed with"):
        next_ticks("--next", "2", "--format", "crontab")


@pytest.mark.django_db(transaction=True)
def test_from_the_shell_a_bad_request_exits_non_zero_with_one_line():
    result = run_manage("maintenance_schedule", "--next", "2", "bogus_task")

    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "CommandError: Unknown task 'bogus_task'"
        " (known: pkce_cleanup, scheduled_emails, oauth_session_cleanup)"
    ]
