"""ESP backends from the environment: EMAIL_BACKEND and anymail's settings, as a real
process loads them; bad values stop it with one line; the ESP keys never reach a log."""

from __future__ import annotations

import json
import logging

import pytest

from maintenance.logs.redaction import RedactSecretsFilter
from tests.processes import run_manage

SHOW = (
    "from django.conf import settings; import json; "
    "print(json.dumps({'backend': settings.EMAIL_BACKEND, "
    "'anymail': getattr(settings, 'ANYMAIL', None)}))"
)


def loaded(**env: str) -> dict:
    done = run_manage("shell", "-c", SHOW, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_an_esp_backend_and_its_settings_come_from_the_environment():
    settings = loaded(
        EMAIL_BACKEND="anymail.backends.postmark.EmailBackend",
        POSTMARK_SERVER_TOKEN="pm-token-0123456789",
        ANYMAIL_WEBHOOK_SECRET="hooks:s3cret-0123456789",
        AMAZON_SES_CLIENT_PARAMS='{"region_name": "eu-west-1"}',
        AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS="false",
        MAILGUN_SENDER_DOMAIN="mg.example.test",
        ANYMAIL_SENDGRID_API_KEY="sg-key-0123456789",
    )

    assert settings["backend"] == "anymail.backends.postmark.EmailBackend"
    assert settings["anymail"] == {
        "POSTMARK_SERVER_TOKEN": "pm-token-0123456789",
        "WEBHOOK_SECRET": "hooks:s3cret-0123456789",
        "AMAZON_SES_CLIENT_PARAMS": {"region_name": "eu-west-1"},
        "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": False,
        "MAILGUN_SENDER_DOMAIN": "mg.example.test",
        "SENDGRID_API_KEY": "sg-key-0123456789",
    }


@pytest.mark.slow
def test_without_an_esp_email_url_still_chooses_smtp_and_anymail_is_unset():
    settings = loaded(EMAIL_URL="smtp://127.0.0.1:2525")

    assert settings == {"backend": "django.core.mail.backends.smtp.EmailBackend", "anymail": None}


@pytest.mark.slow
@pytest.mark.parametrize(
    "env, message",
    [
        ({"EMAIL_BACKEND": "anymail.backends.nosuchesp.EmailBackend"}, "EMAIL_BACKEND="),
        ({"ANYMAIL_WEBHOOK_SECRET": "no-colon-here"}, "ANYMAIL_WEBHOOK_SECRET must be"),
        ({"AMAZON_SES_CLIENT_PARAMS": "{region"}, "AMAZON_SES_CLIENT_PARAMS is not valid JSON"),
    ],
)
def test_bad_values_stop_the_process_with_one_line(env, message):
    done = run_manage("check", **env)

    assert done.returncode != 0
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Configuration error: ")
    assert message in line


def test_esp_keys_and_the_webhook_secret_never_reach_a_log_line(settings):
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": "hooks:w3bh00k-s3cret",
        "POSTMARK_SERVER_TOKEN": "pm-token-0123456789",
        "RESEND_API_KEY": "re_0123456789abcdef",
        "MAILGUN_API_KEY": "key-0123456789abcdef",
    }
    record = logging.LogRecord(
        "emails",
        logging.ERROR,
        __file__,
        1,
        "login with %s, %s, %s and %s failed",
        (
            "hooks:w3bh00k-s3cret",
            "pm-token-0123456789",
            "re_0123456789abcdef",
            "key-0123456789abcdef",
        ),
        None,
    )

    RedactSecretsFilter().filter(record)

    assert record.getMessage() == (
        "login with [redacted], [redacted], [redacted] and [redacted] failed"
    )
