"""An HTTP-triggered email run stays within `MAINTENANCE_HTTP_BUDGET_SECONDS`: it stops
starting messages, answers 200 with what it did and what remains, and the next trigger
continues; no email is lost, held or sent twice. The deadline still fails a run."""

import pytest

from emails.models import ScheduledEmail
from maintenance.models import RunStatus, TaskRun
from maintenance.runs.runner import run_task
from tests.assertions import stopped_at_the_budget
from tests.factories import make_due, statuses

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/emails/process-scheduled"


@pytest.fixture
def slow_mail(slow_smtp_server, settings):
    """Six due emails, each held 0.4 s by the server: 2.4 s in all."""
    settings.CLOUD_DEPLOY = True
    settings.SCHEDULED_EMAILS_BATCH_SIZE = 10
    slow_smtp_server.recorder.delay = 0.4
    make_due(6)
    return slow_smtp_server


def test_a_run_at_its_budget_answers_200_with_what_it_did_and_the_next_continues(
    client, auth_header, slow_mail, settings
):
    settings.MAINTENANCE_HTTP_BUDGET_SECONDS = 1

    body, took = stopped_at_the_budget(client, URL, auth_header)

    sent = body["sent"]
    assert 0 < sent < 6 and body["remaining"] == 6 - sent
    assert body["message"].endswith("stopped after the 1 s HTTP budget, the next trigger continues")
    assert took < 1 + 0.4 + 1  # the budget, the message in flight, slack
    assert TaskRun.objects.get(pk=body["runId"]).result["budgetExhausted"] is True
    assert statuses() == {"sent": sent, "pending": 6 - sent}
    assert {row.attempts for row in ScheduledEmail.objects.exclude(status="sent")} == {0}

    settings.MAINTENANCE_HTTP_BUDGET_SECONDS = 25
    again = client.post(f"{URL}?force=1", **auth_header).json()
    assert again["sent"] == 6 - sent and again["remaining"] == 0
    assert "budgetExhausted" not in again
    assert statuses() == {"sent": 6}
    assert sorted(slow_mail.received().values()) == [1] * 6


def test_the_budget_bounds_only_http_runs(slow_mail, settings):
    settings.MAINTENANCE_HTTP_BUDGET_SECONDS = 1
    outcome = run_task("scheduled_emails", "command")
    assert outcome.result["sent"] == 6 and "budgetExhausted" not in outcome.result


def test_a_deadline_sooner_than_the_budget_still_fails_the_run(
    client, auth_header, slow_mail, settings
):
    settings.SCHEDULED_EMAILS_MAX_RUNTIME_SECONDS = "1"

    response = client.post(URL, **auth_header)

    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "Timed out after 1 s" and 0 < body["remaining"] < 6
    assert TaskRun.objects.get(pk=body["runId"]).status == RunStatus.FAILED
