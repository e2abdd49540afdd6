"""Sending through a real SMTP server on loopback: content, cancellations, bounds."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from emails.models import EmailPreference, ScheduledEmail
from emails.outbox import process_scheduled_emails
from emails.outbox.compose import compose
from tests.factories import make_due, make_users, statuses

pytestmark = pytest.mark.django_db


def test_due_email_is_sent_personalised_with_one_click_unsubscribe(smtp_server, settings):
    settings.APP_URL = "https://plugged.example"
    (email,) = make_due(1)

    result = process_scheduled_emails()

    assert result == {"sent": 1, "failed": 0, "cancelled": 0, "remaining": 0}
    (message,) = smtp_server.messages
    assert message["To"] == "user0@example.test"
    assert "Welcome to Plugged.in, Ann0" in message["Subject"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(message["List-Unsubscribe"]).strip().strip("<>")
    assert link.startswith("https://plugged.example/emails/unsubscribe/")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Hi Ann0" in text and link in text
    assert "Hi Ann0" in html and link in html
    email.refresh_from_db()
    assert email.status == "sent" and email.sent_at is not None and email.attempts == 1


def test_emails_not_yet_due_stay_pending(smtp_server):
    (email,) = make_due(1, at=timezone.now() + timedelta(days=3))
    assert process_scheduled_emails()["sent"] == 0
    assert smtp_server.messages == []
    email.refresh_from_db()
    assert email.status == "pending"


def test_opted_out_and_deactivated_users_are_cancelled_not_sent(smtp_server):
    emails = make_due(3)
    EmailPreference.objects.opt_out(emails[0].user_id)
    get_user_model().objects.filter(pk=emails[1].user_id).update(is_active=False)

    result = process_scheduled_emails()

    assert result["sent"] == 1 and result["cancelled"] == 2
    assert smtp_server.received() == {"user2@example.test": 1}
    assert statuses() == {"sent": 1, "cancelled": 2}


def test_deleted_user_takes_their_emails_along(smtp_server):
    emails = make_due(2)
    get_user_model().objects.filter(pk=emails[0].user_id).delete()

    assert process_scheduled_emails()["sent"] == 1
    assert smtp_server.received() == {"user1@example.test": 1}
    assert ScheduledEmail.objects.count() == 1


def test_emails_overdue_beyond_the_lateness_are_cancelled(smtp_server, settings):
    settings.SCHEDULED_EMAILS_MAX_LATENESS_HOURS = 48
    stale = make_due(1, prefix="old", at=timezone.now() - timedelta(hours=49))
    late = make_due(1, prefix="late", at=timezone.now() - timedelta(hours=47))

    result = process_scheduled_emails()

    assert result["cancelled"] == 1 and result["sent"] == 1
    assert smtp_server.received() == {"late0@example.test": 1}
    stale[0].refresh_from_db()
    assert stale[0].status == "cancelled" and "overdue" in stale[0].last_error
    late[0].refresh_from_db()
    assert late[0].status == "sent"


def test_limit_bounds_one_run_and_the_rest_remains(smtp_server, settings):
    settings.CLOUD_DEPLOY = True
    settings.SCHEDULED_EMAILS_BATCH_SIZE = 2
    make_due(5)

    call_command("process_scheduled_emails", "--limit", "3")

    assert len(smtp_server.messages) == 3
    assert statuses() == {"sent": 3, "pending": 2}
    assert ScheduledEmail.objects.filter(status="pending", attempts=0).count() == 2


def test_max_seconds_stops_the_run_and_hands_back_unsent_claims(slow_smtp_server, settings):
    # Each message takes 0.5 s at the server, the budget is 1 s: the run stops after a
    # few of the ten, however slow or fast the machine is; the point is the hand-back.
    slow_smtp_server.recorder.delay = 0.5
    settings.SCHEDULED_EMAILS_BATCH_SIZE = 10
    make_due(10)

    result = process_scheduled_emails(max_seconds=1.0)

    assert result["sent"] < 10
    assert result["remaining"] == 10 - result["sent"]
    unsent = ScheduledEmail.objects.exclude(status="sent")
    assert {(row.status, row.attempts) for row in unsent} == {("pending", 0)}
    slow_smtp_server.recorder.delay = 0
    assert process_scheduled_emails()["sent"] == 10 - result["sent"]
    assert sorted(slow_smtp_server.received().values()) == [1] * 10


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("victim@example.test\r\nBcc: everyone@example.test", "line break"),
        ("first@example.test, second@example.test", "a list of addresses"),
        ("not-an-address", "invalid syntax"),
    ],
)
def test_an_undeliverable_address_fails_at_once_with_its_reason(address, reason, smtp_server):
    emails = make_due(2)
    get_user_model().objects.filter(pk=emails[0].user_id).update(email=address)

    result = process_scheduled_emails()

    assert result["sent"] == 1 and result["failed"] == 1
    assert smtp_server.received() == {"user1@example.test": 1}
    bad = ScheduledEmail.objects.get(pk=emails[0].pk)
    assert bad.status == "failed" and bad.attempts == 1
    assert "undeliverable address" in bad.last_error and reason in bad.last_error


def test_names_are_not_html_escaped_in_the_subject_and_the_text(smtp_server):
    (email,) = make_due(1)
    get_user_model().objects.filter(pk=email.user_id).update(first_name="O'Brien & Sons")

    process_scheduled_emails()

    (message,) = smtp_server.messages
    assert message["Subject"] == "Welcome to Plugged.in, O'Brien & Sons"
    assert "Hi O'Brien & Sons," in message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "O&#x27;Brien &amp; Sons" in html and "O'Brien & Sons" not in html


def test_each_user_and_email_type_has_its_own_stable_message_id(smtp_server):
    users = make_users(2, prefix="mid")
    for user in users:
        for kind in ("welcome", "day3"):
            ScheduledEmail.objects.create(user=user, email_type=kind, scheduled_for=timezone.now())
    expected = {
        (email.user.email, email.email_type): compose(email).message()["Message-ID"]
        for email in ScheduledEmail.objects.select_related("user")
    }

    process_scheduled_emails()

    received = {
        (str(message["To"]), str(message["X-Pluggedin-Email-Type"])): str(message["Message-ID"])
        for message in smtp_server.messages
    }
    assert received == expected
    assert len(set(received.values())) == 4
    assert all(value.endswith("@localhost>") for value in received.values())


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--limit", "0"], "--limit must be a positive integer, got '0'"),
        (["--limit", "ten"], "--limit must be a positive integer, got 'ten'"),
        (["--max-seconds", "-1"], "--max-seconds must be a positive number, got '-1'"),
        (["--max-seconds", "nan"], "--max-seconds must be a positive number, got 'nan'"),
    ],
)
def test_bad_bounds_are_refused_with_a_clear_error(flags, error, smtp_server, settings):
    settings.CLOUD_DEPLOY = True
    make_due(1)
    with pytest.raises(CommandError, match=error):
        call_command("process_scheduled_emails", *flags)
    assert smtp_server.messages == []
    assert statuses() == {"pending": 1}


@pytest.mark.django_db(transaction=True)
def test_runs_after_a_reconnection_still_record_every_send(smtp_server):
    """The "sent" statement is prepared once per database connection: a second run on the
    same connection and a run on a fresh connection both record their sends."""
    from django.db import connection

    make_due(2, prefix="first")
    assert process_scheduled_emails()["sent"] == 2
    make_due(2, prefix="second")
    assert process_scheduled_emails()["sent"] == 2
    connection.close()
    make_due(2, prefix="third")

    assert process_scheduled_emails() == {"sent": 2, "failed": 0, "cancelled": 0, "remaining": 0}
    assert statuses() == {"sent": 6}
    assert sorted(smtp_server.received().values()) == [1] * 6


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_vanished_prepared_statement_still_records_every_send(smtp_server):
    """A pooler that resets server sessions (`DISCARD ALL`) drops the prepared statement
    behind the sender's back: the write is redone unprepared, nothing is sent twice."""
    from django.db import connection

    make_due(2, prefix="before")
    assert process_scheduled_emails()["sent"] == 2
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    make_due(3, prefix="after")

    assert process_scheduled_emails() == {"sent": 3, "failed": 0, "cancelled": 0, "remaining": 0}
    assert statuses() == {"sent": 5}
    assert sorted(smtp_server.received().values()) == [1] * 5
