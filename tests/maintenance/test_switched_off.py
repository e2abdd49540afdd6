"""A switched-off task says so first, a dry run serves no tick, and a failed tick that is
still servable does not outweigh a later success (SPEC "Ticks")."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from maintenance.models import RunStatus, TaskRun, Trigger
from maintenance.observe.status import maintenance_status
from maintenance.runs import pauses
from maintenance.runs.runner import run_task
from maintenance.schedules import cron
from oauth.models import PKCEState
from tests.assertions import assert_skipped_body
from tests.factories import make_due, make_state

pytestmark = pytest.mark.django_db(transaction=True)

# An hourly tick of today: every task here serves it (the `at` clock starts 3 s after it).
TICK = cron.parse("0 * * * *").latest_tick(timezone.now()) - timedelta(hours=1)
EMAILS = "/api/emails/process-scheduled"
PKCE = "/api/oauth/cleanup-pkce"


def test_a_closed_gate_names_cloud_deploy_after_its_tick_was_served(
    at, client, auth_header, settings
):
    settings.CLOUD_DEPLOY = True
    assert run_task("scheduled_emails", Trigger.CRON).status == RunStatus.SUCCEEDED
    settings.CLOUD_DEPLOY = False

    body = client.post(EMAILS, **auth_header).json()

    skip = TaskRun.objects.get(pk=body["runId"])
    assert_skipped_body(body, skip, success=False, says="CLOUD_DEPLOY")
    assert "already served" not in body["message"]


def test_a_pause_names_itself_after_the_tick_was_served(at, client, auth_header):
    assert run_task("pkce_cleanup", Trigger.CRON).status == RunStatus.SUCCEEDED
    pauses.pause("pkce_cleanup", "database migration", by="cli:ann")

    body = client.post(PKCE, **auth_header).json()

    assert (body["success"], body["skipped"], body["paused"]) == (True, True, True)
    assert "database migration" in body["message"]


def test_a_dry_run_serves_no_tick_and_the_real_cleanup_then_deletes(at, client, auth_header):
    make_state("a", expired=True)

    dry = client.post(f"{PKCE}?dry_run=1", **auth_header).json()
    dry_command = run_task("pkce_cleanup", Trigger.CRON, dry_run=True)
    real = client.post(PKCE, **auth_header).json()

    assert dry["expiredCount"] == 1 and dry_command.result["expiredCount"] == 1
    assert (real["success"], real["deletedCount"]) == (True, 1)
    assert "skipped" not in real
    assert not PKCEState.objects.exists()
    ticks = dict(TaskRun.objects.values_list("pk", "tick"))
    assert ticks[dry["runId"]] is None and ticks[dry_command.run_id] is None
    assert ticks[real["runId"]] == TICK


def test_a_manual_success_after_a_failed_tick_inside_its_deadline_is_healthy(
    at, client, auth_header, settings, smtp_down
):
    settings.CLOUD_DEPLOY = True
    settings.SCHEDULED_EMAILS_BACKOFF_SECONDS = 0
    at(TICK - timedelta(minutes=59))
    before_tick = run_task("scheduled_emails", Trigger.CRON)  # the tick before: served
    assert before_tick.status == RunStatus.SUCCEEDED
    at(TICK + timedelta(seconds=3))
    make_due(2)

    failed = client.post(EMAILS, **auth_header)
    before = maintenance_status(now=TICK + timedelta(seconds=5))["tasks"]["scheduled_emails"]
    smtp_down.start()  # the operator fixes the outage and runs the task by hand
    at(TICK + timedelta(seconds=10))
    manual = run_task("scheduled_emails", Trigger.COMMAND)
    after = maintenance_status(now=TICK + timedelta(seconds=20))["tasks"]["scheduled_emails"]

    assert failed.status_code == 500
    assert (before["healthy"], before["problem"]) == (False, "the latest run failed")
    assert manual.status == RunStatus.SUCCEEDED and manual.result["sent"] == 2
    assert (after["healthy"], after["problem"]) == (True, None)
    assert after["lastTickStatus"] == "failed"  # the tick itself still shows what happened
