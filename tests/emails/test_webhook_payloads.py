"""Authenticated webhook posts that cannot be read: 400 (ESPs stop retrying on a 4xx) and
nothing changed, for every ESP the project documents, through anymail's real views.
A database that is down is no fault of the post: still a 5xx, so the ESP retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import urllib.error
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from emails.models import EmailEvent, EmailSuppression
from tests.emails.test_webhooks import (
    POSTMARK,
    POSTMARK_HARD_BOUNCE,
    SECRET,
    SES,
    SES_BOUNCE,
    basic,
    nothing_changed,
    post_ses,
    sns,
)
from tests.processes import PYTHON, ROOT, free_port, project_env, wait_for

pytestmark = pytest.mark.django_db

RESEND = "/anymail/resend/tracking/"
MAILGUN = "/anymail/mailgun/tracking/"
MAILGUN_KEY = "mailgun-webhook-signing-key-for-tests"
DEEP = "[" * 100_000 + "]" * 100_000

# https://resend.com/docs/dashboard/webhooks/event-types (email.bounced)
RESEND_BOUNCE = {
    "type": "email.bounced",
    "created_at": "2024-11-22T23:41:12.126Z",
    "data": {
        "created_at": "2024-11-22T23:41:11.894719+00:00",
        "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
        "from": "Plugged.in <noreply@plugged.in>",
        "to": ["ann.lee@example.test"],
        "subject": "Welcome to Plugged.in",
        "bounce": {"message": "The recipient's mailbox does not exist.", "type": "Permanent"},
    },
}


def mailgun_signed(event_data) -> dict:
    """A Mailgun JSON webhook body signed with MAILGUN_KEY, as Mailgun signs it."""
    timestamp, token = "1529006854", "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    digest = hmac.new(MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    signature = {"timestamp": timestamp, "token": token, "signature": digest.hexdigest()}
    return {"signature": signature, "event-data": event_data}


# https://documentation.mailgun.com/docs/mailgun/user-manual/tracking-messages/ (failed)
MAILGUN_FAILED = {
    "id": "G9Bn5sl1TC6nu79C8C0bwg",
    "timestamp": 1529006854.329574,
    "event": "failed",
    "severity": "permanent",
    "reason": "bounce",
    "recipient": "ann.lee@example.test",
    "message": {"headers": {"message-id": "20130503182626.18666.16540@plugged.in"}},
    "delivery-status": {"code": 550, "description": "No such mailbox", "message": "5.1.1"},
}

# Per ESP: a well-formed body, then bodies that pass the secret but cannot be read.
WELL_FORMED = {
    "postmark": POSTMARK_HARD_BOUNCE,
    "resend": RESEND_BOUNCE,
    "mailgun": mailgun_signed(MAILGUN_FAILED),
}
WRONG_SHAPE = {
    "postmark": [1, 2],
    "resend": [1, 2],
    "mailgun": [1, 2],
}
WRONG_TYPES = {
    "postmark": {**POSTMARK_HARD_BOUNCE, "Email": ["ann.lee@example.test"]},
    "resend": {**RESEND_BOUNCE, "data": [RESEND_BOUNCE["data"]]},
    "mailgun": mailgun_signed({**MAILGUN_FAILED, "recipient": {"address": "ann.lee@example"}}),
}
URLS = {"postmark": POSTMARK, "resend": RESEND, "mailgun": MAILGUN}


@pytest.fixture
def esp_client(settings) -> Client:
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}
    return Client(enforce_csrf_checks=True, raise_request_exception=False)


@pytest.fixture
def ann(settings):
    settings.CLOUD_DEPLOY = True
    return get_user_model().objects.create_user("ann", "ann.lee@example.test", "pw")


def post_json(client: Client, esp: str, body: str, auth: str | None = SECRET):
    headers = basic(auth) if auth else {}
    return client.post(URLS[esp], body, content_type="application/json", **headers)


def assert_refused_as_unreadable(response, esp_name: str) -> None:
    assert response.status_code == 400, response.content[:300]
    assert response.json() == {
        "success": False,
        "error": f"unreadable {esp_name} webhook payload",
    }


AUTHORIZATION = basic(SECRET)["HTTP_AUTHORIZATION"]
ESP_NAMES = {"postmark": "Postmark", "resend": "Resend", "mailgun": "Mailgun"}


@pytest.mark.parametrize("esp", sorted(URLS))
def test_a_well_formed_post_is_still_recorded(esp_client, ann, esp):
    response = post_json(esp_client, esp, json.dumps(WELL_FORMED[esp]))

    assert response.status_code == 200
    assert EmailSuppression.objects.get().address == "ann.lee@example.test"


# Mailgun's signature check reads a JSON body before anything else: anymail itself
# refuses one that is not JSON with its own 400.
REFUSED_BY_THE_SIGNATURE_CHECK = {("mailgun", "not-json"), ("mailgun", "not-utf8")}
UNREADABLE_BODIES = {
    "not-json": lambda esp: "{not json",
    "not-utf8": lambda esp: b"\xff\xfe{",
    "array": lambda esp: json.dumps(WRONG_SHAPE[esp]),
    "wrong-types": lambda esp: json.dumps(WRONG_TYPES[esp]),
}


@pytest.mark.parametrize("esp", sorted(URLS))
@pytest.mark.parametrize("case", sorted(UNREADABLE_BODIES))
def test_an_unreadable_post_is_a_400_and_changes_nothing(esp_client, ann, esp, case, caplog):
    response = post_json(esp_client, esp, UNREADABLE_BODIES[case](esp))

    if (esp, case) in REFUSED_BY_THE_SIGNATURE_CHECK:
        assert response.status_code == 400
    else:
        assert_refused_as_unreadable(response, ESP_NAMES[esp])
        assert "emails.feedback.unreadable" in caplog.text
    assert nothing_changed(ann)


def test_json_nested_too_deep_to_parse_is_a_400(esp_client, ann):
    response = post_json(esp_client, "postmark", DEEP)

    assert_refused_as_unreadable(response, "Postmark")
    assert nothing_changed(ann)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param("{truncated", id="not-json"),
        pytest.param("[1, 2]", id="array"),
        pytest.param(json.dumps(["Bounce"]), id="wrong-shape"),
        pytest.param(
            json.dumps(
                {
                    **SES_BOUNCE,
                    "bounce": {
                        **SES_BOUNCE["bounce"],
                        "bouncedRecipients": [{"emailAddress": ["ann.lee@example.test"]}],
                    },
                }
            ),
            id="wrong-types",
        ),
        pytest.param(DEEP, id="deep"),
    ],
)
def test_an_unreadable_ses_notification_is_a_400_and_changes_nothing(esp_client, ann, message):
    notification = sns(SES_BOUNCE)
    notification["Message"] = message

    response = post_ses(esp_client, notification)

    assert_refused_as_unreadable(response, "Amazon SES")
    assert nothing_changed(ann)


def test_an_unreadable_sns_envelope_is_a_400(esp_client, ann):
    headers = {"HTTP_X_AMZ_SNS_MESSAGE_TYPE": "Notification", **basic(SECRET)}

    for body in ("{not json", "[1, 2]"):
        response = esp_client.post(SES, body, content_type="text/plain", **headers)
        assert_refused_as_unreadable(response, "Amazon SES")
    assert nothing_changed(ann)


def test_a_post_whose_second_recipient_is_unreadable_records_not_even_the_first(esp_client, ann):
    """The events of one post are recorded together or not at all."""
    recipients = [{"emailAddress": "ann.lee@example.test"}, {"emailAddress": ["bob@x.test"]}]
    bounce = {**SES_BOUNCE, "bounce": {**SES_BOUNCE["bounce"], "bouncedRecipients": recipients}}

    response = post_ses(esp_client, sns(bounce))

    assert_refused_as_unreadable(response, "Amazon SES")
    assert nothing_changed(ann)


def test_nul_characters_are_dropped_so_the_event_is_recorded(esp_client, ann):
    """`\\u0000` is valid JSON that PostgreSQL cannot store: left in, every retry was a 500."""
    bounce = {**POSTMARK_HARD_BOUNCE, "Description": "no\x00 such user", "Tag": "\x00"}

    response = post_json(esp_client, "postmark", json.dumps(bounce))

    assert response.status_code == 200
    event = EmailEvent.objects.get()
    assert (event.description, event.payload["Tag"]) == ("no such user", "")
    assert EmailSuppression.objects.get().reason == "bounced (Postmark): no such user"


@pytest.mark.parametrize("auth", [None, "hooks:wrong-password"])
def test_an_unreadable_post_without_the_secret_gets_the_auth_answer(esp_client, ann, auth):
    response = post_json(esp_client, "postmark", "[1, 2]", auth=auth)

    assert response.status_code == 400
    assert b"unreadable" not in response.content  # anymail's refusal, before any parsing
    assert nothing_changed(ann)
    assert post_ses(esp_client, sns(SES_BOUNCE), auth=None).status_code == 401


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_database_outage_is_still_a_5xx_so_the_esp_retries():
    """A real server whose database is down (nothing listens on its port)."""
    port = free_port()
    server = subprocess.Popen(
        [
            *(PYTHON, "-m", "gunicorn", "--no-control-socket"),
            *("--bind", f"127.0.0.1:{port}", "pluggedin.wsgi:application"),
        ],
        cwd=ROOT,
        env=project_env(
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/pluggedin",
            IN_PROCESS_SCHEDULER="false",
            ANYMAIL_WEBHOOK_SECRET=SECRET,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}{POSTMARK}"
    try:
        assert wait_for(lambda: _answer(url, b"") is not None, timeout=60), "no server"
        answer = _answer(url, json.dumps(POSTMARK_HARD_BOUNCE).encode())
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)

    assert answer == 500, output
    assert not EmailEvent.objects.exists()


def _answer(url: str, body: bytes) -> int | None:
    """The status of an authenticated POST of `body`; None when nothing listens yet."""
    headers = {"Content-Type": "application/json", "Authorization": AUTHORIZATION}
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 - http://
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http://
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None
