"""A task's durations (`<TASK>_STARTING_DEADLINE_SECONDS`, `<TASK>_MAX_RUNTIME_SECONDS`)
are parsed in one place: whatever `manage.py check` accepts, a fraction of a second
included, every command, the status endpoint, /metrics and the runner read alike."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone

from maintenance.checks.settings import task_setting_errors
from maintenance.models import RunStatus, TaskRun, Trigger
from maintenance.runs import deadlines
from maintenance.runs.runner import run_task
from maintenance.schedules import cron
from tests.conftest import SECRET
from tests.factories import fake_task
from tests.processes import run_manage

pytestmark = pytest.mark.django_db(transaction=True)

TICK = cron.parse("*/5 * * * *").latest_tick(timezone.now()) - timedelta(hours=1)
FRACTIONAL = {
    "PKCE_CLEANUP_STARTING_DEADLINE_SECONDS": "90.5",
    "PKCE_CLEANUP_MAX_RUNTIME_SECONDS": "120.5",
}


def a_run_an_hour_ago(task: str = "pkce_cleanup") -> None:
    """The run log's only run of `task`: the ticks since are judged by their deadline."""
    started = timezone.now() - timedelta(hours=1)
    TaskRun.objects.create(
        task=task, trigger=Trigger.ADMIN, status=RunStatus.SUCCEEDED, started_at=started,
        finished_at=started + timedelta(seconds=1),
    )  # fmt: skip


@pytest.mark.usefixtures("other_tasks_healthy")
def test_the_commands_take_what_check_accepts():
    a_run_an_hour_ago()

    checked = run_manage("check", **FRACTIONAL)
    assert checked.returncode == 0, checked.stderr
    assert "E002" not in checked.stdout + checked.stderr

    status = run_manage("maintenance_status", "--json", **FRACTIONAL)
    assert "Traceback" not in status.stderr
    pkce = json.loads(status.stdout)["tasks"]["pkce_cleanup"]
    assert pkce["missedTicks24h"] >= 5  # the ticks of the last hour, each past 90.5 s
    assert status.returncode == 1 and status.stderr.strip().endswith("unhealthy: pkce_cleanup")

    for trigger in ([], ["--trigger", "cron"]):  # a manual run, then one for the tick
        ran = run_manage("cleanup_pkce", *trigger, **FRACTIONAL)
        assert ran.returncode == 0, ran.stderr
    manual = TaskRun.objects.get(task="pkce_cleanup", trigger=Trigger.COMMAND, tick=None)
    assert manual.status == RunStatus.SUCCEEDED


@pytest.mark.usefixtures("other_tasks_healthy")
def test_the_status_endpoint_and_metrics_take_what_check_accepts(client, settings, cron_secret):
    for name, value in FRACTIONAL.items():
        setattr(settings, name, value)
    a_run_an_hour_ago()
    assert task_setting_errors() == []
    call_command("check")

    status = client.get("/api/maintenance/status", HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    assert status.status_code == 503  # unhealthy: ticks of the last hour went unserved
    assert status.json()["tasks"]["pkce_cleanup"]["missedTicks24h"] >= 5

    metrics = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    assert metrics.status_code == 200
    assert b"pluggedin_maintenance_task_info{" in metrics.content


def test_a_run_keeps_a_fractional_deadline_and_starting_deadline(at, settings, isolated_registry):
    def report(**options):
        return {"seconds": deadlines.current().seconds}

    isolated_registry.register(fake_task(func=report, message="{seconds}"))
    settings.DEMO_MAX_RUNTIME_SECONDS = "45.5"
    settings.DEMO_STARTING_DEADLINE_SECONDS = "90.5"

    at(TICK + timedelta(seconds=91))
    late = run_task("demo", Trigger.CRON)
    assert late.skipped
    assert "(DEMO_STARTING_DEADLINE_SECONDS=90.5)" in late.message

    at(TICK + timedelta(minutes=5, seconds=90))
    in_time = run_task("demo", Trigger.CRON)
    assert in_time.status == RunStatus.SUCCEEDED
    assert in_time.result == {"seconds": 45.5}


@pytest.mark.parametrize("value", ["0.5", "abc", "nan", "inf", "1e10", "-3"])
def test_check_refuses_what_no_reader_could_take(settings, value):
    settings.PKCE_CLEANUP_STARTING_DEADLINE_SECONDS = value
    settings.PKCE_CLEANUP_MAX_RUNTIME_SECONDS = value
    errors = [error.msg for error in task_setting_errors()]
    assert len(errors) == 2
    assert f"PKCE_CLEANUP_STARTING_DEADLINE_SECONDS is {value!r}, not a number" in errors[0]
    assert f"PKCE_CLEANUP_MAX_RUNTIME_SECONDS is {value!r}, not a number" in errors[1]


def test_exported_schedulers_stop_a_run_no_sooner_than_its_deadline_in_force(settings):
    settings.PKCE_CLEANUP_MAX_RUNTIME_SECONDS = "120.5"
    out = StringIO()
    call_command("maintenance_schedule", "--format", "systemd", stdout=out)
    assert "TimeoutStartSec=121\n" in out.getvalue()  # the run stops itself at 120.5 s
    out = StringIO()
    call_command("maintenance_schedule", "--format", "kubernetes", stdout=out)
    jobs = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(out.getvalue())}
    assert jobs["pkce-cleanup"]["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 121
