"""A scheduled_emails run that reaches its deadline (`SCHEDULED_EMAILS_MAX_RUNTIME_SECONDS`)
stops between messages: it fails as timed out with its counts, and no email is lost or
sent twice."""

import pytest

from emails.models import ScheduledEmail
from maintenance.runs.runner import run_task
from tests.factories import make_due, statuses

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_run_past_its_deadline_stops_between_messages_and_the_next_run_sends_the_rest(
    slow_smtp_server, settings
):
    settings.CLOUD_DEPLOY = True
    settings.SCHEDULED_EMAILS_BATCH_SIZE = 10
    settings.SCHEDULED_EMAILS_MAX_RUNTIME_SECONDS = "1"
    slow_smtp_server.recorder.delay = 0.4  # six emails take 2.4 s at the server
    make_due(6)

    outcome = run_task("scheduled_emails", "command")

    assert outcome.status == "failed"
    assert outcome.error == "Timed out after 1 s"
    sent = outcome.result["sent"]
    assert 0 < sent < 6
    assert outcome.result["remaining"] == 6 - sent
    assert statuses() == {"sent": sent, "pending": 6 - sent}
    unsent = ScheduledEmail.objects.exclude(status="sent")
    assert {row.attempts for row in unsent} == {0}  # handed back, no attempt spent
    assert sorted(slow_smtp_server.received().values()) == [1] * sent

    slow_smtp_server.recorder.delay = 0
    assert run_task("scheduled_emails", "command").result["sent"] == 6 - sent
    assert statuses() == {"sent": 6}
    assert sorted(slow_smtp_server.received().values()) == [1] * 6
