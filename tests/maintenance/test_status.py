"""`GET /api/maintenance/status` and `maintenance_status`: what an uptime monitor watches."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from maintenance.models import TaskRun
from maintenance.runs.runner import run_task
from oauth.pkce import create_state
from tests.factories import fake_task
from tests.processes import run_manage

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("other_tasks_healthy")]

URL = "/api/maintenance/status"


def age_runs(task: str, by: timedelta) -> None:
    """Move the task's runs, and the ticks they served, `by` into the past."""
    for run in TaskRun.objects.filter(task=task):
        tick = run.tick - by if run.tick else None
        TaskRun.objects.filter(pk=run.pk).update(started_at=run.started_at - by, tick=tick)


def test_pkce_cleanup_healthy_after_a_run_answers_200_with_schedule_runs_and_backlog(
    client, auth_header
):
    create_state(
        "6f1c1f5e-8a8b-4b8e-9a59-3f0e6a3b9a11", "https://a.example/cb", ttl=timedelta(seconds=-5)
    )
    outcome = run_task("pkce_cleanup", "cron")
    create_state(
        "6f1c1f5e-8a8b-4b8e-9a59-3f0e6a3b9a11", "https://a.example/cb", ttl=timedelta(seconds=-5)
    )

    response = client.get(URL, **auth_header)

    assert response.status_code == 200
    body = response.json()
    assert body["healthy"] is True
    task = body["tasks"]["pkce_cleanup"]
    assert task["schedule"] == "*/10 * * * *"
    assert task["intervalSeconds"] == 600
    assert task["enabled"] is True
    assert task["healthy"] is True
    assert task["lastRun"]["id"] == outcome.run_id
    assert task["lastRun"]["status"] == "succeeded"
    assert task["lastRun"]["trigger"] == "cron"
    assert task["lastSuccess"]["id"] == outcome.run_id
    assert task["nextDue"] > task["lastSuccess"]["startedAt"]
    assert body["backlog"]["expiredPkceStates"] == 1


def test_a_task_whose_ticks_went_unserved_answers_503(demo, client, auth_header):
    run_task("demo", "scheduler")
    age_runs("demo", timedelta(minutes=15))  # three ticks of */5 since the one it served

    response = client.get(URL, **auth_header)

    assert response.status_code == 503
    task = response.json()["tasks"]["demo"]
    assert task["healthy"] is False
    assert task["problem"].endswith("was missed")


def test_a_task_that_never_ran_is_unhealthy(demo, client, auth_header):
    response = client.get(URL, **auth_header)

    assert response.status_code == 503
    task = response.json()["tasks"]["demo"]
    assert task["lastRun"] is None and task["lastSuccess"] is None
    assert task["problem"] == "has never succeeded"


def test_a_failed_last_run_shows_its_error_and_is_never_green_despite_an_earlier_success(
    client, auth_header, isolated_registry
):
    calls = []

    def flaky(**options):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("SMTP down")
        return {"count": 1}

    isolated_registry.register(fake_task(func=flaky))
    good = run_task("demo", "command")
    bad = run_task("demo", "command")

    task = client.get(URL, **auth_header).json()["tasks"]["demo"]

    assert task["lastRun"]["id"] == bad.run_id
    assert task["lastRun"]["error"] == "RuntimeError: SMTP down"
    assert task["lastSuccess"]["id"] == good.run_id
    assert task["healthy"] is False
    assert task["problem"] == "the latest run failed"


def test_a_gated_off_task_is_disabled_and_does_not_make_the_status_unhealthy(
    client, auth_header, isolated_registry
):
    isolated_registry.register(fake_task("on"))
    isolated_registry.register(
        fake_task("off", gate=lambda: "Set CLOUD_DEPLOY=true", backlog=lambda: {"dueEmails": 3})
    )
    run_task("on", "scheduler")

    response = client.get(URL, **auth_header)

    assert response.status_code == 200
    off = response.json()["tasks"]["off"]
    assert off["enabled"] is False
    assert off["disabledReason"] == "Set CLOUD_DEPLOY=true"
    assert off["healthy"] is True
    assert off["nextDue"] is None
    assert response.json()["backlog"] == {"dueEmails": 3}


def test_backlog_counts_from_every_task_are_merged(client, auth_header, isolated_registry):
    isolated_registry.register(fake_task("a", backlog=lambda: {"expiredPkceStates": 2}))
    isolated_registry.register(fake_task("b", backlog=lambda: {"dueEmails": 4, "failedEmails": 1}))

    body = client.get(URL, **auth_header).json()

    assert body["backlog"] == {"expiredPkceStates": 2, "dueEmails": 4, "failedEmails": 1}


def test_without_cron_secret_the_status_is_closed(client, settings):
    settings.CRON_SECRET = None

    response = client.get(URL, HTTP_AUTHORIZATION="Bearer anything")

    assert response.status_code == 503
    assert "CRON_SECRET" in response.json()["error"]


def test_only_get_and_head_are_allowed(demo, client, auth_header):
    response = client.post(URL, **auth_header)

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    run_task("demo", "cron")
    assert client.head(URL, **auth_header).status_code == 200


def test_the_command_prints_the_endpoint_body(demo, client, auth_header, capsys):
    run_task("demo", "command")

    call_command("maintenance_status", "--json")

    printed = json.loads(capsys.readouterr().out)
    served = client.get(URL, **auth_header).json()
    assert printed["tasks"] == served["tasks"]
    assert printed["healthy"] is True


def test_the_command_names_stale_tasks_and_fails(demo, capsys):
    with pytest.raises(CommandError, match="unhealthy: demo"):
        call_command("maintenance_status")

    assert "demo" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_1_when_unhealthy_and_0_when_healthy_end_to_end():
    stale = run_manage("maintenance_status")
    assert stale.returncode == 1
    assert stale.stderr.strip() == "CommandError: unhealthy: pkce_cleanup"
    assert "STALE: has never succeeded" in stale.stdout

    TaskRun.objects.create(
        task="pkce_cleanup", trigger="cron", status="succeeded", finished_at=timezone.now()
    )
    healthy = run_manage("maintenance_status", "--json")
    assert healthy.returncode == 0, healthy.stderr
    assert json.loads(healthy.stdout)["healthy"] is True


def test_the_command_reports_an_unreachable_database_in_one_line():
    result = run_manage("maintenance_status", DATABASE_URL="postgres://nobody@127.0.0.1:1/none")

    assert result.returncode == 1
    assert result.stderr.startswith("CommandError: database unavailable:")
    assert "Traceback" not in result.stderr
