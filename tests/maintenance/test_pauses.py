"""Pause and resume: one switch, honoured by every trigger on every host at once."""

from __future__ import annotations

import getpass
import io
import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from maintenance.models import RunStatus, TaskPause, TaskRun, Trigger
from maintenance.registry import get
from maintenance.runs import pauses
from maintenance.runs.runner import run_task
from maintenance.triggers.scheduler import Scheduler
from oauth.models import PKCEState
from tests.factories import fake_task, make_state
from tests.maintenance.test_crontab import crontab_run
from tests.maintenance.test_heartbeat import Monitor, serve
from tests.processes import run_manage

pytestmark = pytest.mark.django_db

REASON = "ESP outage, INC-42"
NAMES_PAUSE = "Skipped: pkce_cleanup is paused by cli:ann since "


def command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def pause_row(task: str = "pkce_cleanup", *, ago=timedelta(0), until=None, **fields) -> TaskPause:
    paused_at = timezone.now() - ago
    return TaskPause.objects.create(
        task=task,
        reason=fields.get("reason", REASON),
        paused_by=fields.get("paused_by", "cli:ann"),
        paused_at=paused_at,
        paused_until=None if until is None else timezone.now() + until,
    )


@pytest.fixture
def paused_cleanup() -> PKCEState:
    """pkce_cleanup paused by cli:ann, with one expired state a run would delete."""
    expired = make_state("e", expired=True)
    pause_row()
    return expired


def assert_skipped_for_the_pause(trigger: str) -> TaskRun:
    run = TaskRun.objects.get(task="pkce_cleanup", trigger=trigger)
    assert run.status == RunStatus.SKIPPED
    assert run.result["reason"].startswith(NAMES_PAUSE)
    assert run.result["reason"].endswith(f"until resumed: {REASON}")
    assert PKCEState.objects.count() == 1, "a paused task deletes nothing"
    return run


def assert_paused_body(body: dict, run: TaskRun) -> None:
    assert body["success"] is True
    assert body["skipped"] is True and body["paused"] is True
    assert body["runId"] == run.pk and body["task"] == "pkce_cleanup"
    assert body["message"].startswith(NAMES_PAUSE)
    assert (body["pausedReason"], body["pausedBy"], body["pausedUntil"]) == (
        REASON,
        "cli:ann",
        None,
    )


# --- maintenance_pause / maintenance_resume -------------------------------------------------


def test_pause_records_who_why_and_until_and_resume_lifts_it():
    out = command("maintenance_pause", "pkce_cleanup", "--reason", REASON, "--for", "2h")

    pause = TaskPause.objects.get()
    assert (pause.task, pause.reason) == ("pkce_cleanup", REASON)
    assert pause.paused_by == f"cli:{getpass.getuser()}"
    assert pause.paused_until - pause.paused_at == timedelta(hours=2)
    assert out.startswith(f"Paused pkce_cleanup on every host: paused by cli:{getpass.getuser()}")
    assert "in progress" not in out

    out = command("maintenance_resume", "pkce_cleanup")

    assert not TaskPause.objects.exists()
    assert out.startswith("Resumed pkce_cleanup on every host (it was paused by cli:")
    assert command("maintenance_resume", "pkce_cleanup") == (
        "pkce_cleanup was not paused; nothing changed.\n"
    )


@pytest.mark.parametrize(("text", "length"), [("30m", 30 * 60), ("2h", 7200), ("1d", 86400)])
def test_durations(text, length):
    assert pauses.parse_duration(text) == timedelta(seconds=length)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["nope", "--reason", "x"], "Unknown task 'nope' (known: pkce_cleanup, "),
        (["pkce_cleanup", "--reason", "  "], "a reason is required"),
        (["pkce_cleanup", "--reason", "x", "--for", "0m"], "like 30m, 2h or 1d, got '0m'"),
        (["pkce_cleanup", "--reason", "x", "--for", "2 weeks"], "got '2 weeks'"),
        (["pkce_cleanup", "--reason", "x", "--for=-1h"], "got '-1h'"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(args, error):
    pause_row("oauth_session_cleanup", reason="earlier pause")

    with pytest.raises(CommandError) as raised:
        command("maintenance_pause", *args)

    assert error in str(raised.value)
    assert list(TaskPause.objects.values_list("task", "reason")) == [
        ("oauth_session_cleanup", "earlier pause")
    ]


def test_resume_of_an_unknown_task_is_refused():
    with pytest.raises(CommandError, match=r"^Unknown task 'nope' \(known: "):
        command("maintenance_resume", "nope")


def test_pausing_again_replaces_the_pause_and_says_so():
    pause_row(reason="first")

    out = command("maintenance_pause", "pkce_cleanup", "--reason", "second", "--for", "1d")

    assert out.startswith("Replaced the earlier pause (paused by cli:ann since ")
    assert list(TaskPause.objects.values_list("reason", flat=True)) == ["second"]


@pytest.mark.django_db(transaction=True)
def test_the_commands_in_real_processes_exit_0_or_1_with_one_line():
    paused = run_manage("maintenance_pause", "pkce_cleanup", "--reason", REASON, "--for", "1d")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith("Paused pkce_cleanup on every host: paused by cli:")
    assert paused.stderr == ""

    ran = run_manage("cleanup_pkce", "--json")
    assert ran.returncode == 0, ran.stderr
    body = json.loads(ran.stdout)
    assert (body["success"], body["skipped"], body["paused"]) == (True, True, True)
    assert body["pausedReason"] == REASON and body["pausedUntil"].endswith("Z")

    unknown = run_manage("maintenance_pause", "nope", "--reason", "x")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        "CommandError: Unknown task 'nope' (known: pkce_cleanup, scheduled_emails, "
        "oauth_session_cleanup)"
    ]
    no_reason = run_manage("maintenance_pause", "pkce_cleanup")
    assert no_reason.returncode != 0
    assert "the following arguments are required: --reason" in no_reason.stderr

    resumed = run_manage("maintenance_resume", "pkce_cleanup")
    assert resumed.returncode == 0, resumed.stderr
    assert not TaskPause.objects.exists()


# --- every trigger honours a pause ----------------------------------------------------------


def test_the_task_command_skips_with_exit_0(paused_cleanup):
    body = json.loads(command("cleanup_pkce", "--json"))

    assert_paused_body(body, assert_skipped_for_the_pause(Trigger.COMMAND))


def test_the_http_endpoint_answers_200_success_skipped_paused(paused_cleanup, auth_header):
    response = Client().post("/api/oauth/cleanup-pkce", **auth_header)

    assert response.status_code == 200
    assert_paused_body(response.json(), assert_skipped_for_the_pause(Trigger.HTTP))


@pytest.mark.django_db(transaction=True)
def test_the_crontab_entry_skips_and_exits_0(paused_cleanup):
    result = crontab_run("pkce_cleanup")

    assert result.returncode == 0, result.stderr
    run = assert_skipped_for_the_pause(Trigger.CRON)
    assert f"cron pkce_cleanup skipped run={run.pk}: {NAMES_PAUSE}" in result.stdout


@pytest.mark.django_db(transaction=True)
def test_the_in_process_scheduler_skips(paused_cleanup):
    scheduler = Scheduler([get("pkce_cleanup")])
    scheduler.plan_startup()  # pkce_cleanup runs at start

    scheduler.run_due()

    assert_skipped_for_the_pause(Trigger.SCHEDULER)


def test_run_maintenance_skips_the_paused_task_and_runs_the_others(paused_cleanup):
    body = json.loads(command("run_maintenance", "pkce_cleanup", "oauth_session_cleanup", "--json"))

    assert body["success"] is True
    assert_paused_body(body["tasks"][0], assert_skipped_for_the_pause(Trigger.COMMAND))
    assert body["tasks"][1]["task"] == "oauth_session_cleanup"
    assert "paused" not in body["tasks"][1]


def test_the_admin_run_now_skips(paused_cleanup, admin_client):
    url = reverse("admin:maintenance_taskrun_run", args=["pkce_cleanup"])

    response = admin_client.post(url, follow=True)

    run = assert_skipped_for_the_pause(Trigger.ADMIN)
    (message,) = response.context["messages"]
    assert message.level_tag == "warning" and str(message).startswith(NAMES_PAUSE)
    assert str(message).endswith(f"(run {run.pk})")


def test_a_pause_wins_over_a_switched_off_gate(settings):
    settings.CLOUD_DEPLOY = False
    pause_row("scheduled_emails")

    outcome = run_task("scheduled_emails", Trigger.CRON)

    assert outcome.success and outcome.skipped and outcome.paused
    assert outcome.message.startswith("Skipped: scheduled_emails is paused by cli:ann")


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    """A heartbeat receiver on loopback."""
    yield from serve(Monitor())


def test_a_paused_run_notifies_no_observer(settings, monitor):
    settings.PKCE_CLEANUP_HEARTBEAT_URL = monitor.url
    pause_row()

    run_task("pkce_cleanup", Trigger.CRON)

    assert monitor.paths == []
    command("maintenance_resume", "pkce_cleanup")
    assert run_task("pkce_cleanup", Trigger.CRON).status == RunStatus.SUCCEEDED
    assert monitor.paths == ["/ping/abc-123/start", "/ping/abc-123"]


def test_a_pause_with_an_end_lapses_by_itself():
    make_state("e", expired=True)
    pause_row("pkce_cleanup", ago=timedelta(hours=3), until=-timedelta(hours=1))
    pause_row("oauth_session_cleanup", until=timedelta(hours=1))

    lapsed = run_task("pkce_cleanup", Trigger.CRON)
    held = run_task("oauth_session_cleanup", Trigger.CRON)

    assert (lapsed.status, lapsed.paused, lapsed.result) == (
        "succeeded",
        False,
        {"deletedCount": 1},
    )
    assert (held.status, held.paused) == ("skipped", True)
    assert set(pauses.pauses_in_force()) == {"oauth_session_cleanup"}
    assert command("maintenance_resume", "pkce_cleanup").startswith("pkce_cleanup was not paused")


# --- a run in progress ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_pausing_lets_a_run_in_progress_finish_and_names_it(isolated_registry):
    started, release = threading.Event(), threading.Event()

    def slow(**options):
        started.set()
        assert release.wait(30)
        return {"count": 1}

    isolated_registry.register(fake_task("demo", slow))
    outcomes = []
    runner = threading.Thread(target=lambda: outcomes.append(run_task("demo", Trigger.CRON)))
    runner.start()
    try:
        assert started.wait(30)
        running = TaskRun.objects.get(task="demo")

        out = command("maintenance_pause", "demo", "--reason", REASON)
    finally:
        release.set()
        runner.join(30)

    assert f"Run {running.pk} of demo is in progress (started " in out
    assert "pausing does not interrupt it, it will finish." in out
    assert outcomes[0].status == RunStatus.SUCCEEDED and outcomes[0].run_id == running.pk
    assert run_task("demo", Trigger.CRON).paused


# --- status, checks, metrics ----------------------------------------------------------------


def test_status_shows_the_pause_and_counts_the_task_healthy(auth_header, other_tasks_healthy):
    pause_row(until=timedelta(hours=2))  # pkce_cleanup has never succeeded

    response = Client().get("/api/maintenance/status", **auth_header)

    assert response.status_code == 200
    task = response.json()["tasks"]["pkce_cleanup"]
    assert task["healthy"] is True and task["paused"] is True
    assert (task["pausedReason"], task["pausedBy"]) == (REASON, "cli:ann")
    assert task["pausedAt"].endswith("Z") and task["pausedUntil"].endswith("Z")
    assert task["warning"] is None
    other = response.json()["tasks"]["oauth_session_cleanup"]
    assert (other["paused"], other["pausedReason"], other["pausedUntil"]) == (False, None, None)


def test_a_pause_older_than_a_day_is_flagged_by_status_and_check_deploy(other_tasks_healthy):
    pause_row("pkce_cleanup", ago=timedelta(hours=25))
    pause_row("oauth_session_cleanup", ago=timedelta(hours=23))

    status = json.loads(command("maintenance_status", "--json"))
    warnings = [m for m in run_checks(include_deployment_checks=True) if m.id == "maintenance.W301"]

    assert status["healthy"] is True
    assert status["tasks"]["pkce_cleanup"]["warning"].startswith("paused for more than a day")
    assert status["tasks"]["oauth_session_cleanup"]["warning"] is None
    assert len(warnings) == 1
    assert warnings[0].msg.startswith("pkce_cleanup has been paused by cli:ann since ")
    assert "maintenance_resume pkce_cleanup" in warnings[0].hint
    assert "WARNING: paused for more than a day" in command("maintenance_status")


def test_the_pauses_in_force_are_one_query(django_assert_num_queries):
    pause_row("pkce_cleanup")
    pause_row("oauth_session_cleanup", until=-timedelta(minutes=1))

    with django_assert_num_queries(1):
        assert set(pauses.pauses_in_force()) == {"pkce_cleanup"}
