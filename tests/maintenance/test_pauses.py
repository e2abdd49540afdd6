"""Pause and resume: one switch, honoured by every trigger on every host at once.

The rules run on the fake tasks `demo` and `other` (every in-process front door: task
command, HTTP, scheduler, run_maintenance, admin); the real processes (manage.py, the
crontab entry) run PKCE cleanup end to end, since a fake task lives in this process only.
"""

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
from tests.assertions import assert_skipped_body
from tests.factories import Calls, counting_task, fake_task, make_state, task_command
from tests.maintenance.test_crontab import crontab_run
from tests.maintenance.test_heartbeat import Monitor, serve
from tests.processes import run_manage

pytestmark = pytest.mark.django_db

REASON = "ESP outage, INC-42"


def names_pause(task: str) -> str:
    return f"Skipped: {task} is paused by cli:ann since "


def command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def pause_row(task: str = "demo", *, ago=timedelta(0), until=None, **fields) -> TaskPause:
    paused_at = timezone.now() - ago
    return TaskPause.objects.create(
        task=task,
        reason=fields.get("reason", REASON),
        paused_by=fields.get("paused_by", "cli:ann"),
        paused_at=paused_at,
        paused_until=None if until is None else timezone.now() + until,
    )


@pytest.fixture
def demo(mounted_registry) -> Calls:
    """The fake tasks `demo` (served at /test/demo, run at startup) and `other`: the calls
    `demo` got."""
    task, calls = counting_task(path="/test/demo", run_at_startup=True)
    mounted_registry.mount(task)
    mounted_registry.register(fake_task("other"))
    return calls


@pytest.fixture
def paused_demo(demo) -> Calls:
    """`demo` paused by cli:ann."""
    pause_row()
    return demo


@pytest.fixture
def paused_cleanup() -> PKCEState:
    """The real pkce_cleanup paused by cli:ann, with one expired state a run would delete."""
    expired = make_state("e", expired=True)
    pause_row("pkce_cleanup")
    return expired


def assert_skipped_for_the_pause(trigger: str, task: str = "demo") -> TaskRun:
    run = TaskRun.objects.get(task=task, trigger=trigger)
    assert run.status == RunStatus.SKIPPED
    assert run.result["reason"].startswith(names_pause(task))
    assert run.result["reason"].endswith(f"until resumed: {REASON}")
    return run


def assert_paused_body(body: dict, run: TaskRun) -> None:
    assert_skipped_body(body, run, success=True, says=names_pause(run.task))
    assert body["message"].startswith(names_pause(run.task))
    assert body["paused"] is True
    assert (body["pausedReason"], body["pausedBy"], body["pausedUntil"]) == (
        REASON,
        "cli:ann",
        None,
    )


# --- maintenance_pause / maintenance_resume -------------------------------------------------


def test_pause_records_who_why_and_until_and_resume_lifts_it(demo):
    out = command("maintenance_pause", "demo", "--reason", REASON, "--for", "2h")

    pause = TaskPause.objects.get()
    assert (pause.task, pause.reason) == ("demo", REASON)
    assert pause.paused_by == f"cli:{getpass.getuser()}"
    assert pause.paused_until - pause.paused_at == timedelta(hours=2)
    assert out.startswith(f"Paused demo on every host: paused by cli:{getpass.getuser()}")
    assert "in progress" not in out

    out = command("maintenance_resume", "demo")

    assert not TaskPause.objects.exists()
    assert out.startswith("Resumed demo on every host (it was paused by cli:")
    assert command("maintenance_resume", "demo") == "demo was not paused; nothing changed.\n"


@pytest.mark.parametrize(("text", "length"), [("30m", 30 * 60), ("2h", 7200), ("1d", 86400)])
def test_durations(text, length):
    assert pauses.parse_duration(text) == timedelta(seconds=length)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["nope", "--reason", "x"], "Unknown task 'nope' (known: demo, other)"),
        (["demo", "--reason", "  "], "a reason is required"),
        (["demo", "--reason", "x", "--for", "0m"], "like 30m, 2h or 1d, got '0m'"),
        (["demo", "--reason", "x", "--for", "2 weeks"], "got '2 weeks'"),
        (["demo", "--reason", "x", "--for=-1h"], "got '-1h'"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(demo, args, error):
    pause_row("other", reason="earlier pause")

    with pytest.raises(CommandError) as raised:
        command("maintenance_pause", *args)

    assert error in str(raised.value)
    assert list(TaskPause.objects.values_list("task", "reason")) == [("other", "earlier pause")]


def test_resume_of_an_unknown_task_is_refused(demo):
    with pytest.raises(CommandError, match=r"^Unknown task 'nope' \(known: demo, other\)"):
        command("maintenance_resume", "nope")


def test_pausing_again_replaces_the_pause_and_says_so(demo):
    pause_row(reason="first")

    out = command("maintenance_pause", "demo", "--reason", "second", "--for", "1d")

    assert out.startswith("Replaced the earlier pause (paused by cli:ann since ")
    assert list(TaskPause.objects.values_list("reason", flat=True)) == ["second"]


@pytest.mark.django_db(transaction=True)
def test_the_commands_in_real_processes_exit_0_or_1_with_one_line_end_to_end():
    """The real tasks, their SPEC command `cleanup_pkce`, in manage.py processes."""
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


def test_the_task_command_skips_with_exit_0(paused_demo):
    body = json.loads(command(task_command(get("demo")), "--json"))

    assert_paused_body(body, assert_skipped_for_the_pause(Trigger.COMMAND))
    assert paused_demo == [], "a paused task does no work"


def test_the_http_endpoint_answers_200_success_skipped_paused(paused_demo, auth_header):
    response = Client().post("/test/demo", **auth_header)

    assert response.status_code == 200
    assert_paused_body(response.json(), assert_skipped_for_the_pause(Trigger.HTTP))
    assert paused_demo == []


@pytest.mark.django_db(transaction=True)
def test_the_crontab_entry_skips_and_exits_0_end_to_end(paused_cleanup):
    result = crontab_run("pkce_cleanup")

    assert result.returncode == 0, result.stderr
    run = assert_skipped_for_the_pause(Trigger.CRON, "pkce_cleanup")
    assert f"cron pkce_cleanup skipped run={run.pk}: {names_pause('pkce_cleanup')}" in (
        result.stdout
    )
    assert PKCEState.objects.count() == 1, "a paused task deletes nothing"


@pytest.mark.django_db(transaction=True)
def test_the_in_process_scheduler_skips(paused_demo):
    scheduler = Scheduler([get("demo")])
    scheduler.plan_startup()  # demo runs at start

    scheduler.run_due()

    assert_skipped_for_the_pause(Trigger.SCHEDULER)
    assert paused_demo == []


def test_run_maintenance_skips_the_paused_task_and_runs_the_others(paused_demo):
    body = json.loads(command("run_maintenance", "demo", "other", "--json"))

    assert body["success"] is True
    assert_paused_body(body["tasks"][0], assert_skipped_for_the_pause(Trigger.COMMAND))
    assert body["tasks"][1]["task"] == "other"
    assert "paused" not in body["tasks"][1]
    assert paused_demo == []


def test_the_admin_run_now_skips(paused_demo, admin_client):
    url = reverse("admin:maintenance_taskrun_run", args=["demo"])

    response = admin_client.post(url, follow=True)

    run = assert_skipped_for_the_pause(Trigger.ADMIN)
    (message,) = response.context["messages"]
    assert message.level_tag == "warning" and str(message).startswith(names_pause("demo"))
    assert str(message).endswith(f"(run {run.pk})")
    assert paused_demo == []


def test_a_pause_wins_over_a_switched_off_gate(isolated_registry):
    isolated_registry.register(fake_task("gated", gate=lambda: "CLOUD_DEPLOY is not true"))
    pause_row("gated")

    outcome = run_task("gated", Trigger.CRON)

    assert outcome.success and outcome.skipped and outcome.paused
    assert outcome.message.startswith("Skipped: gated is paused by cli:ann")


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    """A heartbeat receiver on loopback."""
    yield from serve(Monitor())


def test_a_paused_run_notifies_no_observer(settings, demo, monitor):
    settings.MAINTENANCE_HEARTBEAT_URLS = {"demo": monitor.url}
    pause_row()

    run_task("demo", Trigger.CRON)

    assert monitor.paths == []
    command("maintenance_resume", "demo")
    assert run_task("demo", Trigger.CRON).status == RunStatus.SUCCEEDED
    assert monitor.paths == ["/ping/abc-123/start", "/ping/abc-123"]


def test_a_pause_with_an_end_lapses_by_itself(demo):
    pause_row("demo", ago=timedelta(hours=3), until=-timedelta(hours=1))
    pause_row("other", until=timedelta(hours=1))

    lapsed = run_task("demo", Trigger.CRON)
    held = run_task("other", Trigger.CRON)

    assert (lapsed.status, lapsed.paused, lapsed.result) == ("succeeded", False, {"count": 1})
    assert (held.status, held.paused) == ("skipped", True)
    assert set(pauses.pauses_in_force()) == {"other"}
    assert command("maintenance_resume", "demo").startswith("demo was not paused")


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


def other_succeeded() -> None:
    """`other` healthy, `demo` never run: status shows what the pause does to `demo`."""
    TaskRun.objects.create(
        task="other", trigger="cron", status="succeeded", finished_at=timezone.now()
    )


def test_status_shows_the_pause_and_counts_the_task_healthy(auth_header, demo):
    other_succeeded()
    pause_row(until=timedelta(hours=2))  # demo has never succeeded

    response = Client().get("/api/maintenance/status", **auth_header)

    assert response.status_code == 200
    task = response.json()["tasks"]["demo"]
    assert task["healthy"] is True and task["paused"] is True
    assert (task["pausedReason"], task["pausedBy"]) == (REASON, "cli:ann")
    assert task["pausedAt"].endswith("Z") and task["pausedUntil"].endswith("Z")
    assert task["warning"] is None
    other = response.json()["tasks"]["other"]
    assert (other["paused"], other["pausedReason"], other["pausedUntil"]) == (False, None, None)


def test_a_pause_older_than_a_day_is_flagged_by_status_and_check_deploy(demo):
    other_succeeded()
    pause_row("demo", ago=timedelta(hours=25))
    pause_row("other", ago=timedelta(hours=23))

    status = json.loads(command("maintenance_status", "--json"))
    warnings = [m for m in run_checks(include_deployment_checks=True) if m.id == "maintenance.W301"]

    assert status["healthy"] is True
    assert status["tasks"]["demo"]["warning"].startswith("paused for more than a day")
    assert status["tasks"]["other"]["warning"] is None
    assert len(warnings) == 1
    assert warnings[0].msg.startswith("demo has been paused by cli:ann since ")
    assert "maintenance_resume demo" in warnings[0].hint
    assert "WARNING: paused for more than a day" in command("maintenance_status")


def test_the_pauses_in_force_are_one_query(django_assert_num_queries):
    pause_row("demo")
    pause_row("other", until=-timedelta(minutes=1))

    with django_assert_num_queries(1):
        assert set(pauses.pauses_in_force()) == {"demo"}
