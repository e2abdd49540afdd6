"""`manage.py check --deploy` in the cloud: mail that goes nowhere and links that point
at the reader's own machine are each named, with the fix as the hint."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

SMTP = "django.core.mail.backends.smtp.EmailBackend"
PUBLIC = "https://app.example.com"


def deploy_check() -> str:
    """What an operator reads from `manage.py check --deploy` (warnings go to stderr)."""
    out, err = StringIO(), StringIO()
    call_command("check", deploy=True, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


@pytest.fixture
def cloud(settings):
    settings.CLOUD_DEPLOY = True
    settings.CRON_SECRET = "x" * 32
    settings.EMAIL_BACKEND = SMTP
    settings.APP_URL = PUBLIC
    return settings


@pytest.mark.parametrize("backend", ["console", "locmem", "dummy", "filebased"])
def test_a_backend_that_delivers_nothing_warns_with_the_fix(cloud, backend):
    cloud.EMAIL_BACKEND = f"django.core.mail.backends.{backend}.EmailBackend"

    printed = deploy_check()

    assert f"maintenance.W003) CLOUD_DEPLOY is true but EMAIL_BACKEND is {cloud.EMAIL_BACKEND}" in (
        printed
    )
    assert "HINT: Set EMAIL_URL to your SMTP relay" in printed
    assert "or EMAIL_BACKEND to an anymail backend" in printed


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8000",
        "http://LOCALHOST",
        "https://app.localhost",
        "http://127.0.0.1:8000",
        "http://127.1.2.3",
        "http://[::1]:8000",
        "http://0.0.0.0:8000",
        "http://[::ffff:127.0.0.1]",
    ],
)
def test_an_app_url_on_this_machine_warns_with_the_fix(cloud, url):
    cloud.APP_URL = url

    printed = deploy_check()

    assert f"maintenance.W006) CLOUD_DEPLOY is true but APP_URL is {url}" in printed
    assert "HINT: Set APP_URL to the public https URL users reach" in printed


@pytest.mark.parametrize(
    "url",
    [PUBLIC, "http://10.0.0.5:8000", "https://localhost.example.com", "https://[2001:db8::1]"],
)
def test_a_reachable_app_url_and_a_delivering_backend_say_nothing(cloud, url):
    cloud.APP_URL = url

    printed = deploy_check()

    assert "maintenance.W003" not in printed and "maintenance.W006" not in printed


@pytest.mark.parametrize("backend", [SMTP, "anymail.backends.postmark.EmailBackend"])
def test_a_delivering_backend_is_not_flagged(cloud, backend):
    cloud.EMAIL_BACKEND = backend
    assert "maintenance.W003" not in deploy_check()


def test_outside_the_cloud_local_mail_and_links_are_fine(cloud):
    cloud.CLOUD_DEPLOY = False
    cloud.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    cloud.APP_URL = "http://localhost:8000"

    printed = deploy_check()

    assert "maintenance.W003" not in printed and "maintenance.W006" not in printed
