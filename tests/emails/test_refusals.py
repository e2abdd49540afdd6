"""A reply about one message is that message's business: 4xx retried later, 5xx failed,
a permanent mailbox error suppressed; the connection and the other messages carry on.
Only a connection that is gone is reopened."""

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from emails.models import EmailSuppression, ScheduledEmail
from emails.outbox import process_scheduled_emails
from emails.outbox.suppression import is_suppressed
from tests.factories import make_due, statuses
from tests.smtp_server import Recorder, serve

pytestmark = pytest.mark.django_db


class Refusing(Recorder):
    """Answers chosen recipients with a chosen reply to `RCPT TO` or after their data, and
    remembers each connection (by the client's port) that reached `RCPT TO`."""

    def __init__(self) -> None:
        super().__init__()
        self.at_rcpt: dict[str, str] = {}
        self.after_data: dict[str, str] = {}
        self.connections: set = set()
        self.drop_after_data: set[str] = set()  # keep the message, lose the answer (once)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.connections.add(session.peer)
        if address in self.at_rcpt:
            return self.at_rcpt[address]
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):
        reply = self.after_data.get(envelope.rcpt_tos[0])
        if reply:
            return reply
        answer = await super().handle_DATA(server, session, envelope)
        if envelope.rcpt_tos[0] in self.drop_after_data:
            self.drop_after_data.discard(envelope.rcpt_tos[0])
            server.transport.close()
        return answer


@pytest.fixture
def server(settings):
    settings.SCHEDULED_EMAILS_BACKOFF_SECONDS = 60
    yield from serve(settings, recorder=Refusing())


def row(username: str) -> ScheduledEmail:
    return ScheduledEmail.objects.get(user__username=username)


def test_many_permanent_refusals_cost_no_innocent_message_and_no_reconnection(server):
    make_due(40)
    refused = {f"user{i}@example.test" for i in range(0, 40, 2)}
    for address in refused:
        server.recorder.at_rcpt[address] = "550 5.1.1 mailbox unavailable"

    result = process_scheduled_emails()

    assert result == {"sent": 20, "failed": 20, "cancelled": 0, "remaining": 0}
    assert set(server.received()) == {f"user{i}@example.test" for i in range(1, 40, 2)}
    assert set(server.received().values()) == {1}
    assert len(server.recorder.connections) == 1
    for email in ScheduledEmail.objects.select_related("user"):
        if email.user.email in refused:
            assert email.status == "failed" and email.attempts == 1
            assert "550 5.1.1 mailbox unavailable" in email.last_error
        else:
            assert (email.status, email.attempts, email.last_error) == ("sent", 1, "")


def test_a_temporary_refusal_is_retried_later_and_the_batch_goes_on(server):
    server.recorder.at_rcpt["user1@example.test"] = "451 4.2.0 greylisted, try again later"
    make_due(3)
    now = timezone.now()

    result = process_scheduled_emails(now=now)

    assert result["sent"] == 2 and result["failed"] == 1
    assert set(server.received()) == {"user0@example.test", "user2@example.test"}
    greylisted = row("user1")
    assert greylisted.status == "pending" and greylisted.attempts == 1
    assert "451" in greylisted.last_error
    assert greylisted.scheduled_for == now + timedelta(seconds=60)
    assert len(server.recorder.connections) == 1

    del server.recorder.at_rcpt["user1@example.test"]
    assert process_scheduled_emails(now=now + timedelta(seconds=61))["sent"] == 1
    assert row("user1").status == "sent" and row("user1").attempts == 2


def test_a_4xx_reply_after_data_is_not_counted_as_sent(server):
    server.recorder.after_data["user1@example.test"] = "451 4.3.0 queue full, try later"
    make_due(3)
    now = timezone.now()

    result = process_scheduled_emails(now=now)

    assert result == {"sent": 2, "failed": 1, "cancelled": 0, "remaining": 0}
    assert set(server.received()) == {"user0@example.test", "user2@example.test"}
    deferred = row("user1")
    assert deferred.status == "pending" and deferred.sent_at is None
    assert deferred.attempts == 1 and "451 4.3.0" in deferred.last_error
    assert deferred.scheduled_for == now + timedelta(seconds=60)
    assert len(server.recorder.connections) == 1


def test_a_5xx_reply_after_data_fails_that_message_for_good(server):
    server.recorder.after_data["user0@example.test"] = "554 5.7.1 message rejected as spam"
    make_due(2)

    result = process_scheduled_emails()

    assert result["sent"] == 1 and result["failed"] == 1
    rejected = row("user0")
    assert rejected.status == "failed" and rejected.attempts == 1
    assert "554 5.7.1" in rejected.last_error
    assert row("user1").status == "sent"


def test_a_421_closes_the_connection_and_the_next_message_goes_over_a_new_one(server):
    server.recorder.at_rcpt["user0@example.test"] = "421 4.3.2 shutting down"
    make_due(3)
    first = ScheduledEmail.objects.filter(user__username="user0")
    first.update(scheduled_for=F("scheduled_for") - timedelta(minutes=1))

    result = process_scheduled_emails()

    assert result["sent"] == 2 and result["failed"] == 1
    assert row("user0").status == "pending" and "421" in row("user0").last_error
    assert {row(f"user{i}").attempts for i in (1, 2)} == {1}
    assert statuses() == {"sent": 2, "pending": 1}
    assert len(server.recorder.connections) == 2


def test_a_resend_after_an_unknown_outcome_carries_the_same_message_id(server):
    server.recorder.drop_after_data.add("user0@example.test")
    make_due(1)
    now = timezone.now()

    assert process_scheduled_emails(now=now)["sent"] == 0  # answer lost: outcome unknown
    assert row("user0").status == "pending"
    assert process_scheduled_emails(now=now + timedelta(seconds=61))["sent"] == 1

    first, second = server.messages
    assert first["Message-ID"] == second["Message-ID"]
    assert str(first["Message-ID"]).startswith("<onboarding-welcome-")


def test_a_permanent_mailbox_error_suppresses_the_address_like_a_hard_bounce(server):
    server.recorder.at_rcpt["user0@example.test"] = "550 5.1.1 no such user"
    (welcome,) = make_due(1)
    later = ScheduledEmail.objects.create(
        user=welcome.user, email_type="day3", scheduled_for=timezone.now() + timedelta(days=3)
    )

    process_scheduled_emails()

    assert is_suppressed("USER0@example.test")
    entry = EmailSuppression.objects.get()
    assert (entry.event, entry.esp) == ("bounced", "smtp") and "550 5.1.1" in entry.reason
    later.refresh_from_db()
    assert later.status == "cancelled"
    welcome.refresh_from_db()
    assert welcome.status == "failed"


@pytest.mark.parametrize(
    "reply", ["451 4.2.0 greylisted", "554 5.7.1 policy rejection", "552 5.2.2 mailbox full"]
)
def test_other_refusals_do_not_suppress(server, reply):
    server.recorder.at_rcpt["user0@example.test"] = reply
    make_due(1)

    process_scheduled_emails()

    assert not is_suppressed("user0@example.test")
