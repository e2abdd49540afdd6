"""Every setting is checked before anything runs: a bad value stops each entry point with one
line naming the variable and what it accepts, and nothing runs on it."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import threading

import pytest
from django.conf import settings as django_settings

from maintenance.checks import configuration_error
from maintenance.models import TaskRun
from maintenance.runs.runner import run_task
from maintenance.triggers.scheduler import Scheduler, start_in_process
from oauth.models import PKCEState
from tests.factories import make_state
from tests.processes import PYTHON, ROOT, project_env
from tests.processes import run_bare_manage as manage

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_SECRET = "Zq3-8vH_kT0pXw7sLr2mNa9cYb5dEf1gJh4iKl6oPu"


def refused_in_one_line(result: subprocess.CompletedProcess, *names: str) -> str:
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Configuration error: "), lines
    assert "Traceback" not in result.stderr + result.stdout
    for name in names:
        assert name in lines[0]
    return lines[0]


# (variable, value, words of what it accepts, as the one line says them)
BAD_VALUES = [
    ("MAINTENANCE_DELETE_BATCH_SIZE", "0", "a whole number from 1"),
    ("MAINTENANCE_LOCK_LEASE_SECONDS", "-1", "a whole number from 1"),
    ("PKCE_CLEANUP_INTERVAL_SECONDS", "600", "set PKCE_CLEANUP_CRON instead"),
    ("SCHEDULED_EMAILS_BATCH_SIZE", "0", "a whole number from 1"),
    ("SCHEDULED_EMAILS_CONNECTIONS", "0", "a whole number from 1 to 32"),
    ("SCHEDULED_EMAILS_CONNECTIONS", "100", "a whole number from 1 to 32"),
    ("SCHEDULED_EMAILS_MAX_ATTEMPTS", "-1", "a whole number from 1"),
    ("SCHEDULED_EMAILS_MAX_SECONDS", "inf", "a number greater than 0"),
    ("MAINTENANCE_HTTP_BUDGET_SECONDS", "0", "a number greater than 0"),
    ("PKCE_STATE_TTL_SECONDS", "abc", "a whole number"),
    ("IN_PROCESS_SCHEDULER", "maybe", "true or false"),
    ("LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("APP_URL", "localhost:8000", "http:// or https://"),
    ("PKCE_CLEANUP_CRON", "61 * * * *", "minute 0-59"),
    ("PKCE_CLEANUP_HEARTBEAT_URL", "hc-ping.com/abc", "http:// or https://"),
    ("DATABASE_URL", "mysql://app@127.0.0.1/app", "MySQLdb"),
]


@pytest.mark.parametrize(
    ("name", "value", "accepted"), BAD_VALUES, ids=[f"{v[0]}={v[1]}" for v in BAD_VALUES]
)
def test_a_bad_value_stops_a_task_command_with_one_line(name, value, accepted):
    make_state("a", expired=True)

    result = manage("cleanup_pkce", **{name: value})

    line = refused_in_one_line(result, name)
    assert accepted in line
    assert PKCEState.objects.count() == 1, "nothing ran"
    assert not TaskRun.objects.exists(), "nothing was recorded"


def test_a_bad_email_url_is_one_line_that_never_shows_its_password():
    result = manage("process_scheduled_emails", EMAIL_URL="smtp://mail:hunter2@h:notaport")
    line = refused_in_one_line(result, "EMAIL_URL")
    assert "smtp://" in line and "hunter2" not in result.stderr


@pytest.mark.parametrize(
    "secret", ["two words-0123456789012345678901234567", "héllo-0123456789012345678901234567"]
)
def test_a_cron_secret_no_client_can_send_is_refused_without_showing_it(secret):
    result = manage("cleanup_pkce", CRON_SECRET=secret)
    refused_in_one_line(result, "CRON_SECRET", "printable ASCII")
    assert secret not in result.stderr
    assert not TaskRun.objects.exists()


@pytest.mark.parametrize(
    "command", [["run_maintenance"], ["run_scheduler"], ["maintenance_status"], ["runserver"]]
)
def test_every_command_refuses_a_bad_value(command):
    """run_scheduler and runserver would otherwise run until stopped: they stop at once."""
    result = manage(*command, MAINTENANCE_DELETE_BATCH_SIZE="0", timeout=30)
    refused_in_one_line(result, "MAINTENANCE_DELETE_BATCH_SIZE")
    assert not TaskRun.objects.exists()


def test_check_lists_every_bad_value_with_its_id_and_hint():
    result = manage("check", MAINTENANCE_DELETE_BATCH_SIZE="0", SCHEDULED_EMAILS_BATCH_SIZE="0")
    assert result.returncode == 1
    assert result.stderr.count("(maintenance.E001)") == 2
    assert "HINT: Set MAINTENANCE_DELETE_BATCH_SIZE to a whole number from 1" in result.stderr
    assert "HINT: Set SCHEDULED_EMAILS_BATCH_SIZE to a whole number from 1" in result.stderr


def test_good_settings_run_as_before():
    result = manage("cleanup_pkce", CRON_SECRET=GOOD_SECRET, MAINTENANCE_DELETE_BATCH_SIZE="5")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_a_fresh_database_says_to_run_migrate(tmp_path):
    result = manage("cleanup_pkce", DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "run `python manage.py migrate`" in result.stderr


def python_settings(code: str, env_file: str = "", **env: str) -> str:
    result = subprocess.run(
        [PYTHON, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=project_env(PLUGGEDIN_ENV_FILE=env_file, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_app_url_with_a_trailing_space_or_slash_builds_clean_links():
    shown = python_settings(
        "from emails.conf import email_settings as s; print(repr(s.APP_URL))",
        APP_URL=" https://app.example.com/ ",
    )
    assert shown == "'https://app.example.com'"


def test_an_inline_comment_in_the_env_file_is_not_part_of_the_value(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"CRON_SECRET={GOOD_SECRET} # rotated 2026-11\n"
        "APP_URL=https://app.example.com#not-a-comment\n"
        "PKCE_CLEANUP_CRON=*/5 * * * *   # every five minutes\n"
        'DEFAULT_FROM_EMAIL="Team # 1 <team@example.com>"  # quoted\n'
    )
    code = (
        "from django.conf import settings as s; "
        "print(repr((s.CRON_SECRET, s.APP_URL, s.PKCE_CLEANUP_CRON, s.DEFAULT_FROM_EMAIL)))"
    )
    shown = python_settings(code, env_file=str(env_file))
    expected = (
        GOOD_SECRET,
        "https://app.example.com#not-a-comment",
        "*/5 * * * *",
        "Team # 1 <team@example.com>",
    )
    assert shown == repr(expected)


# --- In a serving process (settings changed at run time; no manage.py in front) ---------


def test_the_endpoint_refuses_to_run_on_a_bad_value(client, auth_header, settings):
    make_state("a", expired=True)
    settings.MAINTENANCE_DELETE_BATCH_SIZE = 0  # a slice loop that never ends on PostgreSQL

    response = client.post("/api/oauth/cleanup-pkce", **auth_header)

    assert response.status_code == 500
    error = response.json()["error"]
    assert error.startswith("Configuration error: MAINTENANCE_DELETE_BATCH_SIZE is 0")
    assert "\n" not in error
    assert PKCEState.objects.count() == 1
    assert not TaskRun.objects.exists()


def test_the_runner_refuses_a_lease_that_would_let_two_runners_in(settings, demo):
    settings.MAINTENANCE_LOCK_LEASE_SECONDS = -1
    outcome = run_task("demo", "command")
    assert outcome.failed and demo == []
    assert "MAINTENANCE_LOCK_LEASE_SECONDS" in outcome.error
    assert not TaskRun.objects.exists()


def test_the_scheduler_does_not_start_on_a_negative_interval(settings, caplog):
    """`PKCE_CLEANUP_INTERVAL_SECONDS=-10` once gave 39 runs in 5 seconds."""
    settings.IN_PROCESS_SCHEDULER = True
    settings.PKCE_CLEANUP_INTERVAL_SECONDS = "-10"
    caplog.set_level(logging.INFO, logger="maintenance.scheduler")

    assert start_in_process() is None
    loop = threading.Thread(target=Scheduler().run_forever, daemon=True)
    loop.start()
    loop.join(timeout=5)

    assert not loop.is_alive(), "run_forever returns at once"
    assert not TaskRun.objects.exists()
    refusals = [r for r in caplog.records if "maintenance.scheduler.disabled" in r.getMessage()]
    assert len(refusals) == 2 and all(r.levelno == logging.ERROR for r in refusals)
    assert "PKCE_CLEANUP_INTERVAL_SECONDS" in refusals[0].getMessage()


# --- What the checks accept -----------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [" leading-0123456789012345678901234567890", "tab\there-012345678901234567890123456789"],
)
def test_check_refuses_a_secret_with_whitespace_and_never_shows_it(settings, secret):
    settings.CRON_SECRET = secret
    error = configuration_error()
    assert error and "CRON_SECRET" in error and "maintenance.E001" in error
    assert secret.strip() not in error


@pytest.mark.parametrize("sender", ["not an address", "a@example.com\nBcc: b@example.com"])
def test_check_refuses_a_sender_no_mail_server_takes(settings, sender):
    settings.DEFAULT_FROM_EMAIL = sender
    error = configuration_error()
    assert error and "DEFAULT_FROM_EMAIL" in error and "maintenance.E003" in error
    assert "\n" not in error.replace(repr(sender), "")


def test_check_accepts_a_generated_secret_and_no_secret(settings):
    settings.CRON_SECRET = GOOD_SECRET
    assert configuration_error() is None
    settings.CRON_SECRET = None
    assert configuration_error() is None


def test_the_postgresql_test_database_is_named_after_the_checkout():
    """Two checkouts testing on one server never share (and drop) one test database."""
    name = django_settings.DATABASES["default"]["TEST"]["NAME"]
    if django_settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        assert name.startswith(str(ROOT))
    else:
        checkout = hashlib.blake2b(str(ROOT).encode(), digest_size=4).hexdigest()
        assert name == f"test_pluggedin_{checkout}"
