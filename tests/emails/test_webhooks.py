"""ESP delivery webhooks, posted as Postmark and Amazon SES (through SNS) post them, through
anymail's own views and parsing. The payloads follow the ESPs' published examples (as
anymail's own tests use them), with our users' addresses.

Anymail (15.x) does not verify SNS message signatures (its code says "Future"): it checks
the basic-auth secret and that the SNS headers match the body. So nothing is mocked here:
no certificate is ever fetched.
"""

from __future__ import annotations

import base64
import copy
import json
import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from emails.models import EmailEvent, EmailPreference, EmailSuppression, ScheduledEmail
from emails.outbox import claims
from emails.outbox.batch import BatchSender
from tests.factories import make_due

pytestmark = pytest.mark.django_db

SECRET = "hooks:w3bh00k-s3cret-for-tests"
POSTMARK = "/anymail/postmark/tracking/"
SES = "/anymail/amazon_ses/tracking/"

# https://postmarkapp.com/developer/webhooks/bounce-webhook (anymail's test_bounce_event)
POSTMARK_HARD_BOUNCE = {
    "RecordType": "Bounce",
    "ID": 901542550,
    "Type": "HardBounce",
    "TypeCode": 1,
    "ServerID": 23,
    "Name": "Hard bounce",
    "MessageID": "2706ee8a-737c-4285-b032-ccd317af53ed",
    "Description": "The server was unable to deliver your message"
    " (ex: unknown user, mailbox not found).",
    "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
    "Email": "Ann.Lee@Example.test",
    "From": "noreply@plugged.in",
    "BouncedAt": "2016-04-27T16:28:50.3963933-04:00",
    "DumpAvailable": True,
    "Inactive": True,
    "CanActivate": True,
    "Subject": "Welcome to Plugged.in",
}
POSTMARK_SOFT_BOUNCE = {
    **POSTMARK_HARD_BOUNCE,
    "ID": 901542551,
    "Type": "SoftBounce",
    "TypeCode": 4096,
    "Name": "Soft bounce",
    "Description": "Unable to temporarily deliver this email.",
    "Details": "smtp;452 4.2.2 Mailbox full",
    "Inactive": False,
}
POSTMARK_SPAM_COMPLAINT = {
    "RecordType": "SpamComplaint",
    "ID": 901542552,
    "Type": "SpamComplaint",
    "TypeCode": 512,
    "Name": "Spam complaint",
    "MessageID": "2706ee8a-737c-4285-b032-ccd317af53ed",
    "ServerID": 1234,
    "Description": "",
    "Details": "Test spam complaint details",
    "Email": "ann.lee@example.test",
    "From": "noreply@plugged.in",
    "BouncedAt": "2016-04-27T16:28:50.3963933-04:00",
    "DumpAvailable": True,
    "Inactive": True,
    "CanActivate": False,
    "Subject": "Welcome to Plugged.in",
}
# https://postmarkapp.com/developer/webhooks/subscription-change-webhook (no event ID)
POSTMARK_UNSUBSCRIBE = {
    "RecordType": "SubscriptionChange",
    "MessageID": "a4909a96-73d7-4c49-b148-a54522d3f7ac",
    "ServerID": 23,
    "MessageStream": "outbound",
    "ChangedAt": "2022-06-05T17:17:32Z",
    "Recipient": "ANN.LEE@example.test",
    "Origin": "Recipient",
    "SuppressSending": True,
    "SuppressionReason": "ManualSuppression",
    "Tag": "welcome",
    "Metadata": {},
}
POSTMARK_DELIVERY = {
    "RecordType": "Delivery",
    "ServerID": 23,
    "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    "Recipient": "ann.lee@example.test",
    "DeliveredAt": "2014-08-01T13:28:10.2735393-04:00",
    "Details": "Test delivery webhook details",
}

# https://docs.aws.amazon.com/ses/latest/dg/notification-examples.html (bounce)
SES_BOUNCE = {
    "notificationType": "Bounce",
    "bounce": {
        "bounceType": "Permanent",
        "reportingMTA": "dns; email.example.com",
        "bouncedRecipients": [
            {
                "emailAddress": "ann.lee@example.test",
                "status": "5.1.1",
                "action": "failed",
                "diagnosticCode": "smtp; 550 5.1.1 <ann.lee@example.test>... User unknown",
            },
            {"emailAddress": "BOB@example.test", "status": "5.1.1", "action": "failed"},
        ],
        "bounceSubType": "General",
        "timestamp": "2016-01-27T14:59:44.101Z",
        "feedbackId": "00000138111222aa-44455566-cccc-cccc-cccc-ddddaaaa068a-000000",
        "remoteMtaIp": "127.0.2.0",
    },
    "mail": {
        "timestamp": "2016-01-27T14:59:38.237Z",
        "source": "noreply@plugged.in",
        "sourceArn": "arn:aws:ses:us-west-2:888888888888:identity/plugged.in",
        "sourceIp": "127.0.3.0",
        "sendingAccountId": "123456789012",
        "messageId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
        "destination": ["ann.lee@example.test", "BOB@example.test", "carl@example.test"],
        "headersTruncated": False,
    },
}
SES_COMPLAINT = {
    "notificationType": "Complaint",
    "complaint": {
        "userAgent": "AnyCompany Feedback Loop (V0.01)",
        "complainedRecipients": [{"emailAddress": "ann.lee@example.test"}],
        "complaintFeedbackType": "abuse",
        "timestamp": "2016-01-27T14:59:44.101Z",
        "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000",
    },
    "mail": {
        "messageId": "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
        "destination": ["ann.lee@example.test"],
    },
}


def sns(ses_event: dict, message_id: str = "19ba9823-d7f2-53c1-860e-cb10e0d13dfc") -> dict:
    """The SNS envelope SES publishes through (https://docs.aws.amazon.com/sns/latest/dg/
    sns-message-and-json-formats.html)."""
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:us-east-1:1234567890:SES_Events",
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(ses_event) + "\n",
        "Timestamp": "2018-03-26T17:58:59.675Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE-SIGNATURE==",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }


def basic(credentials: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


@pytest.fixture
def esp_client(settings) -> Client:
    """A client as an ESP is one: no CSRF token, no session; errors come back as
    responses (status codes), not raised into the test."""
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    return Client(enforce_csrf_checks=True, raise_request_exception=False)


def post_postmark(client: Client, event: dict, auth: str | None = SECRET):
    headers = basic(auth) if auth else {}
    return client.post(POSTMARK, json.dumps(event), content_type="application/json", **headers)


def post_ses(client: Client, sns_message: dict, auth: str | None = SECRET, **extra):
    headers = {
        "HTTP_X_AMZ_SNS_MESSAGE_ID": sns_message["MessageId"],
        "HTTP_X_AMZ_SNS_MESSAGE_TYPE": sns_message["Type"],
        **(basic(auth) if auth else {}),
        **extra,
    }
    return client.post(
        SES,
        json.dumps(sns_message),
        content_type="text/plain; charset=UTF-8",  # SNS posts JSON as text/plain
        **headers,
    )


@pytest.fixture
def ann(settings):
    settings.CLOUD_DEPLOY = True
    return get_user_model().objects.create_user("ann", "ann.lee@example.test", "pw")


@pytest.fixture
def bob(settings):
    settings.CLOUD_DEPLOY = True
    return get_user_model().objects.create_user("bob", "bob@example.test", "pw")


def statuses_of(user) -> set[str]:
    return set(ScheduledEmail.objects.filter(user=user).values_list("status", flat=True))


def nothing_changed(*users) -> bool:
    return (
        not EmailSuppression.objects.exists()
        and not EmailEvent.objects.exists()
        and not EmailPreference.objects.exists()
        and all(statuses_of(user) == {"pending"} for user in users)
    )


# --- Postmark --------------------------------------------------------------------------


def test_postmark_hard_bounce_suppresses_and_cancels_the_series(esp_client, ann):
    response = post_postmark(esp_client, POSTMARK_HARD_BOUNCE)

    assert response.status_code == 200
    entry = EmailSuppression.objects.get()
    assert (entry.address, entry.event, entry.esp) == (
        "ann.lee@example.test",
        "bounced",
        "Postmark",
    )
    assert "550 5.1.1" in entry.reason or "unknown user" in entry.reason
    assert statuses_of(ann) == {"cancelled"}
    assert all(
        row.last_error.startswith("address suppressed: bounced (Postmark)")
        for row in ScheduledEmail.objects.filter(user=ann)
    )
    event = EmailEvent.objects.get()
    assert (event.esp, event.event_id, event.event_type) == ("Postmark", "901542550", "bounced")
    assert (event.recipient, event.action) == ("ann.lee@example.test", "suppressed")
    assert event.payload["Details"].startswith("smtp;550")


def test_the_same_postmark_event_twice_changes_nothing(esp_client, ann):
    assert post_postmark(esp_client, POSTMARK_HARD_BOUNCE).status_code == 200
    first = EmailSuppression.objects.get()
    # An admin lifts the suppression and requeues the series; then Postmark retries.
    EmailSuppression.objects.all().delete()
    ScheduledEmail.objects.filter(user=ann).retry_now()

    assert post_postmark(esp_client, POSTMARK_HARD_BOUNCE).status_code == 200

    assert EmailEvent.objects.count() == 1
    assert not EmailSuppression.objects.exists()
    assert statuses_of(ann) == {"pending"}
    assert first.address == "ann.lee@example.test"


def test_postmark_soft_bounce_is_recorded_and_suppresses_nothing(esp_client, ann):
    assert post_postmark(esp_client, POSTMARK_SOFT_BOUNCE).status_code == 200

    event = EmailEvent.objects.get()
    assert (event.event_type, event.action) == ("bounced", "recorded (soft bounce)")
    assert not EmailSuppression.objects.exists()
    assert statuses_of(ann) == {"pending"}


def test_postmark_spam_complaint_suppresses(esp_client, ann):
    assert post_postmark(esp_client, POSTMARK_SPAM_COMPLAINT).status_code == 200

    assert EmailSuppression.objects.get().event == "complained"
    assert statuses_of(ann) == {"cancelled"}


def test_postmark_unsubscribe_is_the_onboarding_opt_out(esp_client, ann):
    assert post_postmark(esp_client, POSTMARK_UNSUBSCRIBE).status_code == 200
    assert post_postmark(esp_client, POSTMARK_UNSUBSCRIBE).status_code == 200  # a retry

    assert EmailPreference.objects.get(user=ann).onboarding_opt_out is True
    assert statuses_of(ann) == {"cancelled"}
    assert not EmailSuppression.objects.exists()
    event = EmailEvent.objects.get()  # no ID from Postmark: stored once by its fingerprint
    assert event.event_id.startswith("sha256:")
    assert (event.event_type, event.action) == ("unsubscribed", "opted out (1 users)")


def test_postmark_delivery_is_only_recorded(esp_client, ann):
    assert post_postmark(esp_client, POSTMARK_DELIVERY).status_code == 200

    assert EmailEvent.objects.get().action == "recorded"
    assert not EmailSuppression.objects.exists()
    assert statuses_of(ann) == {"pending"}


# --- Amazon SES through SNS ------------------------------------------------------------


def test_ses_permanent_bounce_suppresses_every_bounced_recipient(esp_client, ann, bob):
    carl = get_user_model().objects.create_user("carl", "carl@example.test", "pw")

    response = post_ses(esp_client, sns(SES_BOUNCE))

    assert response.status_code == 200
    assert set(EmailSuppression.objects.values_list("address", flat=True)) == {
        "ann.lee@example.test",
        "bob@example.test",
    }
    assert statuses_of(ann) == statuses_of(bob) == {"cancelled"}
    assert statuses_of(carl) == {"pending"}  # a destination that did not bounce
    events = EmailEvent.objects.order_by("recipient")
    assert [e.event_id for e in events] == ["19ba9823-d7f2-53c1-860e-cb10e0d13dfc"] * 2
    assert events[0].mta_response.startswith("smtp; 550 5.1.1")


def test_ses_notification_delivered_twice_is_stored_once(esp_client, ann, bob):
    assert post_ses(esp_client, sns(SES_BOUNCE)).status_code == 200
    EmailSuppression.objects.all().delete()

    assert post_ses(esp_client, sns(SES_BOUNCE)).status_code == 200

    assert EmailEvent.objects.count() == 2
    assert not EmailSuppression.objects.exists()


def test_ses_transient_bounce_is_recorded_and_suppresses_nothing(esp_client, ann):
    transient = copy.deepcopy(SES_BOUNCE)
    transient["bounce"].update(bounceType="Transient", bounceSubType="MailboxFull")
    transient["bounce"]["bouncedRecipients"] = transient["bounce"]["bouncedRecipients"][:1]

    assert post_ses(esp_client, sns(transient)).status_code == 200

    assert EmailEvent.objects.get().action == "recorded (soft bounce)"
    assert not EmailSuppression.objects.exists()
    assert statuses_of(ann) == {"pending"}


def test_ses_complaint_suppresses(esp_client, ann):
    assert post_ses(esp_client, sns(SES_COMPLAINT)).status_code == 200

    entry = EmailSuppression.objects.get()
    assert (entry.event, entry.esp) == ("complained", "Amazon SES")
    assert statuses_of(ann) == {"cancelled"}


def test_ses_reject_suppresses(esp_client, ann):
    reject = {
        "eventType": "Reject",
        "mail": {"messageId": "7c191be45-reject", "destination": ["ann.lee@example.test"]},
        "reject": {"reason": "Bad content"},
    }
    assert post_ses(esp_client, sns(reject)).status_code == 200

    assert EmailSuppression.objects.get().event == "rejected"
    assert statuses_of(ann) == {"cancelled"}


# --- Refused posts: they change nothing -------------------------------------------------


def test_webhooks_are_closed_without_a_secret(settings, ann):
    settings.ANYMAIL = {}
    client = Client(raise_request_exception=False)

    postmark = post_postmark(client, POSTMARK_HARD_BOUNCE, auth=None)
    ses = post_ses(client, sns(SES_BOUNCE), auth=None)

    assert postmark.status_code == ses.status_code == 503
    assert b"ANYMAIL_WEBHOOK_SECRET" in postmark.content
    assert nothing_changed(ann)


@pytest.mark.parametrize("auth", [None, "hooks:wrong-password", "nobody:" + SECRET])
def test_postmark_without_the_secret_is_refused(esp_client, ann, auth):
    response = post_postmark(esp_client, POSTMARK_HARD_BOUNCE, auth=auth)

    assert response.status_code == 400  # anymail's answer to failed basic auth
    assert nothing_changed(ann)


def test_ses_without_credentials_is_asked_for_them(esp_client, ann):
    response = post_ses(esp_client, sns(SES_BOUNCE), auth=None)

    assert response.status_code == 401  # SNS sends basic auth only after a 401
    assert response["WWW-Authenticate"].startswith("Basic")
    assert nothing_changed(ann)
    assert post_ses(esp_client, sns(SES_BOUNCE), auth="hooks:wrong").status_code == 400
    assert nothing_changed(ann)


def test_malformed_posts_get_an_error_and_change_nothing(esp_client, ann):
    not_json = esp_client.post(
        POSTMARK, "{not json", content_type="application/json", **basic(SECRET)
    )
    mismatched = post_ses(
        esp_client, sns(SES_BOUNCE), HTTP_X_AMZ_SNS_MESSAGE_TYPE="SubscriptionConfirmation"
    )
    broken_message = sns(SES_BOUNCE)
    broken_message["Message"] = "{truncated"
    unparsable = post_ses(esp_client, broken_message)

    assert not_json.status_code >= 400
    assert mismatched.status_code == 400
    assert unparsable.status_code >= 400
    assert nothing_changed(ann)


# --- The race: a bounce arriving while the batch is claimed ----------------------------


def test_a_bounce_posted_while_the_batch_is_claimed_is_honoured(esp_client, mailoutbox):
    emails = make_due(3)
    batch = claims.claim(10, timezone.now())
    bounced = emails[1].user.email
    bounce = {**POSTMARK_HARD_BOUNCE, "Email": bounced.upper()}

    assert post_postmark(esp_client, bounce).status_code == 200
    sender = BatchSender(deadline=float("inf"))
    sender.send(batch, claimed_at=time.monotonic())

    assert bounced not in {message.to[0] for message in mailoutbox}
    assert (sender.counts.sent, sender.counts.cancelled) == (2, 1)
    assert ScheduledEmail.objects.get(pk=emails[1].pk).status == "cancelled"
