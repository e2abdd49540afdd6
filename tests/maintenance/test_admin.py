"""The admin as an inspection console: run log, per-task summary, run now, pause, resume."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from maintenance.models import TaskPause, TaskRun
from maintenance.runs.runner import run_task
from tests.factories import fake_task

pytestmark = pytest.mark.django_db

INDEX = "/admin/maintenance/"


def run_url(task: str) -> str:
    return reverse("admin:maintenance_taskrun_run", args=[task])


@pytest.mark.usefixtures("other_tasks_healthy")
def test_the_app_index_shows_each_real_task_health_and_backlog_end_to_end(admin_client):
    run_task("pkce_cleanup", "cron")

    page = admin_client.get(INDEX).content.decode()

    assert 'data-task="pkce_cleanup"' in page
    assert "healthy" in page and "all healthy" in page
    assert "expiredPkceStates=0" in page
    assert "Run now" in page


def test_the_index_links_each_task_to_its_runs(admin_client, isolated_registry):
    isolated_registry.register(fake_task("alpha"))
    isolated_registry.register(fake_task("beta"))
    run_task("alpha", "cron")
    run_task("beta", "cron")

    page = admin_client.get(INDEX).content.decode()
    assert 'href="/admin/maintenance/taskrun/?task=alpha"' in page
    runs = admin_client.get("/admin/maintenance/taskrun/?task=alpha")

    assert runs.status_code == 200
    assert [run.task for run in runs.context["cl"].result_list] == ["alpha"]


def test_a_stale_task_is_flagged_on_the_index(admin_client):
    page = admin_client.get(INDEX).content.decode()

    assert "UNHEALTHY" in page
    assert "has never succeeded" in page


def test_run_now_runs_the_task_as_admin_and_shows_the_outcome(demo, admin_client):
    response = admin_client.post(run_url("demo"), {"next": INDEX}, follow=True)

    run = TaskRun.objects.get()
    assert (run.task, run.trigger, run.status) == ("demo", "admin", "succeeded")
    assert demo == [{}]
    assert response.redirect_chain[-1][0] == INDEX
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [f"Did 1 things (run {run.pk})"]


def test_run_now_reports_a_failure_as_an_error(admin_client, isolated_registry):
    def broken(**options):
        raise RuntimeError("SMTP down")

    isolated_registry.register(fake_task(func=broken))

    response = admin_client.post(run_url("demo"), follow=True)

    (message,) = response.context["messages"]
    assert message.level_tag == "error"
    assert "demo failed: RuntimeError: SMTP down" in str(message)


def test_run_now_ignores_an_offsite_next(demo, admin_client):
    response = admin_client.post(run_url("demo"), {"next": "https://evil.example/"})

    assert response["Location"] == INDEX


def test_run_now_refuses_get_unknown_tasks_and_non_staff(demo, admin_client, django_user_model):
    assert admin_client.get(run_url("demo")).status_code == 405
    assert admin_client.post(run_url("nope")).status_code == 404

    user = django_user_model.objects.create_user("plain", password="pw")
    client = Client()
    client.force_login(user)
    response = client.post(run_url("demo"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not TaskRun.objects.exists()


def test_run_now_needs_a_csrf_token(demo, admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    assert client.post(run_url("demo")).status_code == 403
    assert not TaskRun.objects.exists()


def test_the_run_log_is_read_only_with_filters_and_durations(demo, admin_client):
    outcome = run_task("demo", "cron")

    page = admin_client.get("/admin/maintenance/taskrun/?trigger__exact=cron").content.decode()

    assert "count=1" in page
    assert " ms" in page
    for facet in ("By task", "By trigger", "By status"):
        assert facet in page
    detail = admin_client.get(f"/admin/maintenance/taskrun/{outcome.run_id}/change/")
    assert detail.status_code == 200
    assert "&quot;count&quot;: 1" in detail.content.decode()
    assert "Save" not in detail.content.decode()
    assert admin_client.get("/admin/maintenance/taskrun/add/").status_code == 403
    delete = f"/admin/maintenance/taskrun/{outcome.run_id}/delete/"
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403


def pause_url(task: str) -> str:
    return reverse("admin:maintenance_task_pause", args=[task])


def resume_url(task: str) -> str:
    return reverse("admin:maintenance_task_resume", args=[task])


def test_pause_from_the_admin_is_recorded_with_the_user_and_shown(demo, admin_client):
    response = admin_client.post(
        pause_url("demo"),
        {"reason": "ESP outage, INC-9", "for": "30m", "next": INDEX},
        follow=True,
    )

    pause = TaskPause.objects.get()
    assert (pause.task, pause.paused_by, pause.reason) == (
        "demo",
        "admin",
        "ESP outage, INC-9",
    )
    assert pause.paused_until - pause.paused_at == timedelta(minutes=30)
    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith("Paused demo on every host: paused by admin since ")
    page = response.content.decode()
    assert 'data-task="demo" data-state="paused"' in page
    assert "by admin until " in page and ": ESP outage, INC-9" in page
    assert 'name="resume-demo"' in page and 'name="pause-demo"' not in page


def test_resume_from_the_admin_lifts_the_pause(demo, admin_client):
    admin_client.post(pause_url("demo"), {"reason": "migration"}, follow=True)

    response = admin_client.post(resume_url("demo"), follow=True)

    assert not TaskPause.objects.exists()
    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith("Resumed demo (it was paused by admin since ")
    again = admin_client.post(resume_url("demo"), follow=True)
    assert [str(m) for m in again.context["messages"]] == ["demo was not paused; nothing changed."]


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"reason": "   "}, "a reason is required"),
        ({}, "a reason is required"),
        ({"reason": "x", "for": "forever"}, "the duration must be like 30m, 2h or 1d"),
        ({"reason": "x" * 501}, "at most 500"),
    ],
)
def test_a_bad_pause_form_changes_nothing_and_says_why(demo, admin_client, form, error):
    response = admin_client.post(pause_url("demo"), form, follow=True)

    assert not TaskPause.objects.exists()
    (message,) = response.context["messages"]
    assert message.level_tag == "error"
    assert str(message).startswith("demo was not paused: ") and error in str(message)


def test_pause_and_resume_need_post_csrf_a_known_task_and_the_permission(
    demo, admin_user, admin_client, django_user_model
):
    assert admin_client.get(pause_url("demo")).status_code == 405
    assert admin_client.post(pause_url("nope"), {"reason": "x"}).status_code == 404
    assert admin_client.post(resume_url("nope")).status_code == 404
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(admin_user)
    assert csrf_client.post(pause_url("demo"), {"reason": "x"}).status_code == 403
    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_taskrun"))
    viewer = Client()
    viewer.force_login(staff)
    assert viewer.post(pause_url("demo"), {"reason": "x"}).status_code == 403
    page = viewer.get(INDEX).content.decode()
    assert 'name="run-demo"' not in page and "Pause&hellip;" not in page
    assert not TaskPause.objects.exists()

    TaskPause.objects.create(task="demo", reason="x", paused_by="cli:ann")
    assert viewer.post(resume_url("demo")).status_code == 403
    assert TaskPause.objects.exists()


def test_each_task_state_reads_at_a_glance(admin_client, isolated_registry):
    isolated_registry.register(fake_task("alpha"))
    isolated_registry.register(fake_task("beta", gate=lambda: "Skipped: BETA_URL is not set."))
    isolated_registry.register(fake_task("gamma"))
    run_task("alpha", "cron")
    TaskPause.objects.create(
        task="gamma",
        reason="disk full",
        paused_by="cli:ann",
        paused_at=timezone.now() - timedelta(days=2),
    )

    page = admin_client.get(INDEX).content.decode()

    assert 'data-task="alpha" data-state="healthy"' in page
    assert 'data-task="beta" data-state="switched off"' in page
    assert "BETA_URL is not set." in page and "Skipped: BETA_URL" not in page
    assert 'data-task="gamma" data-state="paused"' in page
    assert "paused for more than a day" in page
    assert "Tasks: all healthy, 1 paused" in page


def test_the_pauses_are_listed_read_only(demo, admin_client):
    TaskPause.objects.create(task="demo", reason="ESP outage", paused_by="cli:ann")

    page = admin_client.get("/admin/maintenance/taskpause/").content.decode()

    assert "ESP outage" in page and "cli:ann" in page
    assert admin_client.get("/admin/maintenance/taskpause/add/").status_code == 403
