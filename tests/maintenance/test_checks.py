"""System checks: each warning appears exactly when its condition holds."""

from __future__ import annotations

import subprocess

import pytest
from django.core import checks
from django.core.management import call_command

from emails import checks as email_checks
from maintenance.checks import crontab as crontab_checks
from maintenance.checks import security as security_checks

CRONJOBS = [
    ("*/10 * * * *", "django.core.management.call_command", ["cleanup_pkce"], {"trigger": "cron"}),
]


def ids(deploy: bool = False) -> set[str]:
    found = checks.run_checks(include_deployment_checks=deploy)
    return {m.id for m in found if m.id.startswith("maintenance.")}


def installed(user: str) -> str:
    return subprocess.run(["crontab", "-u", user, "-l"], capture_output=True, text=True).stdout


@pytest.fixture
def strong_secret(settings):
    settings.CRON_SECRET = "x" * 32


def test_unset_cron_secret_warns_only_for_deploy(settings):
    settings.CRON_SECRET = None

    assert "maintenance.W001" in ids(deploy=True)
    assert "maintenance.W001" not in ids()


def test_a_short_cron_secret_warns(settings):
    settings.CRON_SECRET = "x" * 31
    assert "maintenance.W002" in ids()

    settings.CRON_SECRET = "x" * 32
    assert not {"maintenance.W001", "maintenance.W002"} & ids(deploy=True)


def test_cloud_deploy_with_the_console_email_backend_warns(settings, strong_secret):
    settings.CLOUD_DEPLOY = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert "maintenance.W003" in ids()

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert "maintenance.W003" not in ids()

    settings.CLOUD_DEPLOY = False
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert "maintenance.W003" not in ids()


def test_debug_with_cloud_deploy_warns(settings, strong_secret):
    settings.CLOUD_DEPLOY, settings.DEBUG = True, True
    assert "maintenance.W004" in ids()

    settings.DEBUG = False
    assert "maintenance.W004" not in ids()


def test_every_check_has_an_id_and_a_hint():
    for module, name in [
        (security_checks, "W001"),
        (security_checks, "W002"),
        (email_checks, "W004"),
        (crontab_checks, "W005"),
    ]:
        warning = getattr(module, name)
        assert warning.id == f"maintenance.{name}"
        assert warning.hint


def test_without_cronjobs_there_is_nothing_to_compare(settings, throwaway_crontab):
    """An installation that triggers its tasks by other means (CRONJOBS empty) is never
    told its crontab is out of date, even with this project's entries still installed."""
    settings.CRONJOBS = CRONJOBS
    call_command("crontab", "add", verbosity=0)
    assert "crontab run" in installed(throwaway_crontab)

    settings.CRONJOBS = []
    assert "maintenance.W005" not in ids()


def test_crontab_nothing_installed_is_not_out_of_date(settings, throwaway_crontab, capfd):
    settings.CRONJOBS = CRONJOBS
    assert "maintenance.W005" not in ids()
    assert "no crontab" not in capfd.readouterr().err


def test_crontab_in_sync_after_add_and_out_of_date_after_a_schedule_change(
    settings, throwaway_crontab, capsys
):
    settings.CRONJOBS = CRONJOBS
    call_command("crontab", "add")
    assert "crontab run" in installed(throwaway_crontab)
    assert "maintenance.W005" not in ids()

    settings.CRONJOBS = [("*/5 * * * *", *CRONJOBS[0][1:])]
    assert "maintenance.W005" in ids()

    call_command("crontab", "add", verbosity=0)  # the fix the hint gives
    assert "maintenance.W005" not in ids()


def test_other_projects_lines_do_not_count(settings, throwaway_crontab):
    settings.CRONJOBS = CRONJOBS
    other = "0 * * * * /usr/bin/true crontab run abc # django-cronjobs for another\n"
    subprocess.run(["crontab", "-u", throwaway_crontab, "-"], input=other, text=True, check=True)

    assert "maintenance.W005" not in ids()


def test_manage_py_check_prints_the_warning_with_its_hint(settings):
    settings.CRON_SECRET = "short"

    with pytest.raises(Exception) as raised:
        call_command("check", "--fail-level", "WARNING")

    assert "maintenance.W002" in str(raised.value)
    assert "token_urlsafe" in str(raised.value)


def test_the_crontab_check_stays_quiet_without_a_crontab_or_a_binary(settings, capfd):
    settings.CRONJOBS = CRONJOBS
    settings.CRONTAB_EXECUTABLE = "/nonexistent/crontab"
    assert "maintenance.W005" not in ids()

    settings.CRONTAB_EXECUTABLE = "/bin/false"
    assert "maintenance.W005" not in ids()
    assert capfd.readouterr().err == ""
