"""The suppression list: a suppressed address gets no onboarding email again, whatever its
case, whether it was suppressed before its emails were scheduled, due or claimed."""

import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from emails.models import EmailSuppression, ScheduledEmail
from emails.outbox import claims, process_scheduled_emails
from emails.outbox.batch import BatchSender
from emails.outbox.suppression import is_suppressed, suppress, unsuppress
from tests.factories import make_due, statuses

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann(settings):
    settings.CLOUD_DEPLOY = True
    return get_user_model().objects.create_user("ann", "Ann.Lee@Example.TEST", "pw")


def test_suppressing_cancels_the_pending_series_with_the_reason(ann):
    done = suppress("ann.lee@example.test", reason="hard bounce", event="bounced", esp="Postmark")
    assert (done.created, done.cancelled) == (True, 3)

    rows = ScheduledEmail.objects.filter(user=ann)
    assert {row.status for row in rows} == {"cancelled"}
    assert all("hard bounce" in row.last_error for row in rows)
    entry = EmailSuppression.objects.get()
    assert entry.address == "ann.lee@example.test"
    assert (entry.event, entry.esp) == ("bounced", "Postmark")


def test_addresses_compare_case_insensitively(ann):
    suppress("  ANN.LEE@example.test ", reason="complaint")

    assert is_suppressed("ann.lee@EXAMPLE.test")
    assert EmailSuppression.objects.get().address == "ann.lee@example.test"
    assert not is_suppressed("someone.else@example.test")


def test_suppressing_twice_keeps_the_first_entry(ann):
    first = suppress(ann.email, reason="hard bounce", event="bounced", esp="Amazon SES")
    assert first.created is True
    assert suppress(ann.email.upper(), reason="complaint", event="complained").created is False

    entry = EmailSuppression.objects.get()
    assert (entry.reason, entry.event) == ("hard bounce", "bounced")


def test_an_empty_address_is_refused_and_changes_nothing():
    with pytest.raises(ValueError, match="address is required"):
        suppress("  ", reason="x")
    assert not EmailSuppression.objects.exists()


def test_unsuppressing_lets_new_emails_through(ann, mailoutbox):
    suppress(ann.email, reason="by mistake")
    assert unsuppress(ann.email.upper()) is True
    assert unsuppress(ann.email) is False
    ScheduledEmail.objects.filter(user=ann).retry_now()  # all three due now

    assert process_scheduled_emails()["sent"] == 3
    assert {tuple(message.to) for message in mailoutbox} == {(ann.email,)}


def test_a_run_cancels_due_emails_of_an_address_suppressed_in_the_database(mailoutbox):
    """Rows suppressed behind the app's back (or before the list existed) are cancelled
    in bulk at the start of a run."""
    emails = make_due(3)
    EmailSuppression.objects.create(address=emails[0].user.email.upper(), reason="imported")

    result = process_scheduled_emails()

    assert (result["sent"], result["cancelled"]) == (2, 1)
    assert emails[0].user.email not in [m.to[0] for m in mailoutbox]


def test_a_bounce_arriving_while_the_batch_is_claimed_stops_that_email(mailoutbox):
    """The race: rows claimed, then the address is suppressed (an ESP webhook in another
    request), then the runner sends the batch. The suppressed row is cancelled, not sent."""
    emails = make_due(3)
    batch = claims.claim(10, timezone.now())
    assert len(batch) == 3
    bounced = emails[1].user.email

    suppress(bounced.upper(), reason="hard bounce", event="bounced", esp="Postmark")
    assert statuses() == {"sending": 3}  # a claimed row belongs to its runner
    sender = BatchSender(deadline=float("inf"))
    sender.send(batch, claimed_at=time.monotonic())

    assert {m.to[0] for m in mailoutbox} == {emails[0].user.email, emails[2].user.email}
    assert (sender.counts.sent, sender.counts.cancelled) == (2, 1)
    row = ScheduledEmail.objects.get(pk=emails[1].pk)
    assert (row.status, row.last_error) == ("cancelled", "address suppressed")


def test_a_suppressed_address_gets_nothing_in_later_runs(ann, mailoutbox):
    assert process_scheduled_emails()["sent"] == 1  # the welcome
    suppress(ann.email, reason="complaint", event="complained", esp="Postmark")

    in_a_week = timezone.now() + timedelta(days=8)
    assert process_scheduled_emails(now=in_a_week)["sent"] == 0
    assert len(mailoutbox) == 1
