"""`POST /api/emails/process-scheduled` and `process_scheduled_emails --json`."""

import json

import pytest

from emails.models import ScheduledEmail
from tests.factories import make_due
from tests.processes import run_manage

pytestmark = pytest.mark.django_db

URL = "/api/emails/process-scheduled"


def test_without_cloud_deploy_the_endpoint_skips_and_sends_nothing(
    client, auth_header, smtp_server, settings
):
    settings.CLOUD_DEPLOY = False
    make_due(2)

    response = client.post(URL, **auth_header)

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is False and body["skipped"] is True
    assert "CLOUD_DEPLOY" in body["message"]
    assert smtp_server.messages == []
    assert set(ScheduledEmail.objects.values_list("status", flat=True)) == {"pending"}


def test_without_a_token_nothing_runs(client, cron_secret, smtp_server, settings):
    settings.CLOUD_DEPLOY = True
    make_due(1)
    response = client.post(URL)
    assert response.status_code == 401
    assert smtp_server.messages == []


def test_in_the_cloud_the_endpoint_sends_and_reports_counts(
    client, auth_header, smtp_server, settings
):
    settings.CLOUD_DEPLOY = True
    make_due(3)

    response = client.post(f"{URL}?limit=2", **auth_header)

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["task"] == "scheduled_emails"
    assert (body["sent"], body["failed"], body["cancelled"], body["remaining"]) == (2, 0, 0, 1)
    assert {"message", "timestamp", "durationMs", "runId"} <= set(body)
    assert len(smtp_server.messages) == 2


def test_a_bad_bound_is_a_400_naming_it(client, auth_header, smtp_server, settings):
    settings.CLOUD_DEPLOY = True
    make_due(1)
    response = client.post(f"{URL}?max_seconds=0", **auth_header)
    assert response.status_code == 400
    assert "max_seconds" in response.json()["error"]
    assert smtp_server.messages == []


@pytest.mark.django_db(transaction=True)
def test_command_json_outside_the_cloud_prints_the_skip_and_exits_0(smtp_server):
    make_due(1)
    done = run_manage("process_scheduled_emails", "--json", EMAIL_URL=smtp_server.url)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["success"] is False and body["skipped"] is True
    assert "CLOUD_DEPLOY" in body["message"]
    assert smtp_server.messages == []


@pytest.mark.django_db(transaction=True)
def test_command_bad_limit_exits_1_with_one_line(smtp_server):
    done = run_manage(
        "process_scheduled_emails", "--limit", "0", CLOUD_DEPLOY="true", EMAIL_URL=smtp_server.url
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "CommandError: --limit must be a positive integer, got '0'"


def test_an_smtp_outage_is_a_500_with_the_counts(client, auth_header, smtp_down, settings):
    settings.CLOUD_DEPLOY = True
    make_due(2)

    response = client.post(URL, **auth_header)

    assert response.status_code == 500
    body = response.json()
    assert body["success"] is False and "SMTP unavailable" in body["error"]
    assert (body["sent"], body["failed"], body["cancelled"]) == (0, 2, 0)
    assert "traceback" not in body


@pytest.mark.django_db(transaction=True)
def test_command_during_an_smtp_outage_exits_1_and_still_prints_the_counts(smtp_down):
    make_due(2)

    done = run_manage(
        "process_scheduled_emails", "--json", CLOUD_DEPLOY="true", EMAIL_URL=smtp_down.url
    )

    assert done.returncode == 1
    body = json.loads(done.stdout)
    assert body["success"] is False and (body["sent"], body["failed"]) == (0, 2)
    assert "SMTP unavailable" in done.stderr.strip().splitlines()[-1]
    assert set(ScheduledEmail.objects.values_list("status", flat=True)) == {"pending"}
