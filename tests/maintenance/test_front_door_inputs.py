"""What the front doors accept: each task endpoint takes the options its task declares
(`dry_run` on the cleanups, `limit` and `max_seconds` on emails) and names anything else;
the status endpoint answers other methods with 405; `--trigger` names its choices."""

from __future__ import annotations

import pytest

from emails.models import ScheduledEmail
from maintenance.models import TaskRun
from oauth.models import PKCEState
from tests.factories import make_due, make_state
from tests.processes import run_manage

pytestmark = pytest.mark.django_db

PKCE = "/api/oauth/cleanup-pkce"
SESSIONS = "/api/oauth/cleanup-sessions"
EMAILS = "/api/emails/process-scheduled"


def test_dry_run_on_the_endpoint_counts_and_deletes_nothing(client, auth_header):
    make_state("a", expired=True)
    make_state("b", expired=False)

    response = client.post(f"{PKCE}?dry_run=1", **auth_header)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    assert "would be deleted" in body["message"]
    assert PKCEState.objects.count() == 2


@pytest.mark.parametrize("url", [PKCE, SESSIONS])
def test_an_unknown_parameter_is_a_400_naming_it_and_nothing_runs(client, auth_header, url):
    make_state("a", expired=True)

    response = client.post(f"{url}?dryrun=1", **auth_header)

    assert response.status_code == 400
    error = response.json()["error"]
    assert "dryrun" in error and "dry_run" in error, "names the stranger and what is accepted"
    assert PKCEState.objects.count() == 1
    assert not TaskRun.objects.exists()


def test_the_emails_endpoint_takes_limit_and_refuses_dry_run(
    client, auth_header, smtp_server, settings
):
    settings.CLOUD_DEPLOY = True
    make_due(3)

    refused = client.post(f"{EMAILS}?dry_run=1", **auth_header)
    assert refused.status_code == 400
    assert "dry_run" in refused.json()["error"]
    assert "limit" in refused.json()["error"] and "max_seconds" in refused.json()["error"]
    assert smtp_server.messages == []

    response = client.post(f"{EMAILS}?limit=1&max_seconds=30", **auth_header)
    assert response.status_code == 200, response.content
    assert (response.json()["sent"], response.json()["remaining"]) == (1, 2)
    assert ScheduledEmail.objects.filter(status="sent").count() == 1


def test_parameters_are_read_only_after_the_token_check(client, cron_secret):
    response = client.post(f"{PKCE}?nonsense=1")
    assert response.status_code == 401


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_the_status_endpoint_answers_other_methods_with_405(client, auth_header, method):
    response = getattr(client, method)("/api/maintenance/status", **auth_header)
    assert response.status_code == 405
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


def test_a_bad_trigger_names_the_choices_as_typed():
    result = run_manage("cleanup_pkce", "--trigger", "bogus")
    assert result.returncode != 0
    assert "(choose from 'command', 'cron')" in result.stderr
    assert "Trigger." not in result.stderr
