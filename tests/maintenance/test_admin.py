"""The admin as an inspection console: run log, per-task summary, run now."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from maintenance.models import TaskRun
from maintenance.runner import run_task
from tests.factories import fake_task

pytestmark = pytest.mark.django_db

INDEX = "/admin/maintenance/"


def run_url(task: str) -> str:
    return reverse("admin:maintenance_taskrun_run", args=[task])


@pytest.mark.usefixtures("other_tasks_healthy")
def test_the_app_index_shows_each_task_health_and_backlog(admin_client):
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


def test_run_now_runs_the_task_as_admin_and_shows_the_outcome(admin_client):
    response = admin_client.post(run_url("pkce_cleanup"), {"next": INDEX}, follow=True)

    run = TaskRun.objects.get()
    assert (run.task, run.trigger, run.status) == ("pkce_cleanup", "admin", "succeeded")
    assert response.redirect_chain[-1][0] == INDEX
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [f"Deleted 0 expired PKCE states (run {run.pk})"]


def test_run_now_reports_a_failure_as_an_error(admin_client, isolated_registry):
    def broken(**options):
        raise RuntimeError("SMTP down")

    isolated_registry.register(fake_task(func=broken))

    response = admin_client.post(run_url("demo"), follow=True)

    (message,) = response.context["messages"]
    assert message.level_tag == "error"
    assert "demo failed: RuntimeError: SMTP down" in str(message)


def test_run_now_ignores_an_offsite_next(admin_client):
    response = admin_client.post(run_url("pkce_cleanup"), {"next": "https://evil.example/"})

    assert response["Location"] == INDEX


def test_run_now_refuses_get_unknown_tasks_and_non_staff(admin_client, django_user_model):
    assert admin_client.get(run_url("pkce_cleanup")).status_code == 405
    assert admin_client.post(run_url("nope")).status_code == 404

    user = django_user_model.objects.create_user("plain", password="pw")
    client = Client()
    client.force_login(user)
    response = client.post(run_url("pkce_cleanup"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not TaskRun.objects.exists()


def test_run_now_needs_a_csrf_token(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    assert client.post(run_url("pkce_cleanup")).status_code == 403
    assert not TaskRun.objects.exists()


def test_the_run_log_is_read_only_with_filters_and_durations(admin_client):
    outcome = run_task("pkce_cleanup", "cron")

    page = admin_client.get("/admin/maintenance/taskrun/?trigger__exact=cron").content.decode()

    assert "deletedCount=0" in page
    assert " ms" in page
    for facet in ("By task", "By trigger", "By status"):
        assert facet in page
    detail = admin_client.get(f"/admin/maintenance/taskrun/{outcome.run_id}/change/")
    assert detail.status_code == 200
    assert "&quot;deletedCount&quot;: 0" in detail.content.decode()
    assert "Save" not in detail.content.decode()
    assert admin_client.get("/admin/maintenance/taskrun/add/").status_code == 403
    delete = f"/admin/maintenance/taskrun/{outcome.run_id}/delete/"
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
