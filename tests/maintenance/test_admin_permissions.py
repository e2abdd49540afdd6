"""Who may do what in the admin, over real HTTP: viewing needs only the view permissions;
running a task needs `maintenance.run_task`, retrying or cancelling emails
`emails.change_scheduledemail`, pausing `maintenance.change_taskpause`. A refusal is 403
and changes nothing; a button the user may not press is not on the page."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from emails.models import ScheduledEmail
from maintenance.models import TaskPause, TaskRun
from oauth.models import OAuthSession, PKCEState
from oauth.sessions import create_session
from tests.factories import make_due, make_state

pytestmark = pytest.mark.django_db

INDEX = "/admin/maintenance/"
RUN_LOG = "/admin/maintenance/taskrun/"
PKCE_STATES = "/admin/oauth/pkcestate/"
SESSIONS = "/admin/oauth/oauthsession/"
EMAILS = "/admin/emails/scheduledemail/"


def staff_client(django_user_model, name: str, *extra: str) -> Client:
    """A staff user with every view permission of our apps, plus `extra` (`app.codename`)."""
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    views = Permission.objects.filter(
        codename__startswith="view_", content_type__app_label__in=["maintenance", "oauth", "emails"]
    )
    user.user_permissions.add(*views)
    for permission in extra:
        app, codename = permission.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer(django_user_model) -> Client:
    return staff_client(django_user_model, "viewer")


@pytest.fixture
def runner(django_user_model) -> Client:
    return staff_client(django_user_model, "runner", "maintenance.run_task")


@pytest.fixture
def expired_state() -> PKCEState:
    return make_state("a", expired=True)


def expired_session() -> OAuthSession:
    session = create_session(uuid.uuid4(), uuid.uuid4(), "https://app.example/cb", "github")
    session.expires_at = timezone.now() - timedelta(minutes=1)
    session.save(update_fields=["expires_at"])
    return session


def act(client: Client, changelist: str, action: str, rows) -> int:
    """POST a changelist action as the page's form does; the status code of the answer."""
    selected = [str(row.pk) for row in rows]
    return client.post(changelist, {"action": action, "_selected_action": selected}).status_code


def state_of(email: ScheduledEmail) -> tuple[str, int]:
    email.refresh_from_db()
    return email.status, email.attempts


def run_now(client: Client, task: str) -> int:
    url = reverse("admin:maintenance_taskrun_run", args=[task])
    return client.post(url, {"next": INDEX}).status_code


def test_a_view_only_user_sees_every_page_without_the_buttons(viewer, expired_state):
    make_due(1)
    index = viewer.get(INDEX).content.decode()
    assert 'data-task="pkce_cleanup"' in index
    assert "Run now" not in index and "Pause&hellip;" not in index

    for page in (RUN_LOG, PKCE_STATES, SESSIONS, EMAILS):
        response = viewer.get(page)
        assert response.status_code == 200, page
        assert 'name="action"' not in response.content.decode(), page


def test_a_view_only_user_cannot_run_now(viewer, expired_state):
    assert run_now(viewer, "pkce_cleanup") == 403

    assert PKCEState.objects.filter(pk=expired_state.pk).exists()
    assert not TaskRun.objects.exists()


@pytest.mark.parametrize(
    ("changelist", "action", "row"),
    [
        (PKCE_STATES, "run_pkce_cleanup", lambda: make_state("a", expired=True)),
        (SESSIONS, "run_oauth_session_cleanup", expired_session),
        (EMAILS, "run_scheduled_emails", lambda: make_due(1)[0]),
    ],
)
def test_a_forged_task_action_from_a_view_only_user_is_403_and_runs_nothing(
    viewer, changelist, action, row
):
    selected = row()

    assert act(viewer, changelist, action, [selected]) == 403

    assert type(selected).objects.filter(pk=selected.pk).exists()
    assert not TaskRun.objects.exists()


@pytest.mark.parametrize("action", ["retry_now", "cancel_pending"])
def test_a_view_only_user_cannot_retry_or_cancel_emails(viewer, action):
    failed, pending = make_due(2)
    ScheduledEmail.objects.filter(pk=failed.pk).update(status="failed", attempts=5)

    assert act(viewer, EMAILS, action, [failed, pending]) == 403

    assert state_of(failed) == ("failed", 5)
    assert state_of(pending) == ("pending", 0)


def test_a_view_only_user_cannot_pause_or_resume(viewer):
    pause = reverse("admin:maintenance_task_pause", args=["pkce_cleanup"])
    assert viewer.post(pause, {"reason": "x"}).status_code == 403
    assert not TaskPause.objects.exists()

    TaskPause.objects.create(task="pkce_cleanup", reason="x", paused_by="cli:ann")
    resume = reverse("admin:maintenance_task_resume", args=["pkce_cleanup"])
    assert viewer.post(resume).status_code == 403
    assert TaskPause.objects.get().reason == "x"


def test_run_task_alone_runs_from_the_index_and_the_changelist(runner, expired_state):
    assert "Run now" in runner.get(INDEX).content.decode()
    assert 'value="run_pkce_cleanup"' in runner.get(PKCE_STATES).content.decode()

    assert run_now(runner, "pkce_cleanup") == 302
    assert not PKCEState.objects.exists()
    expired_session()
    assert act(runner, SESSIONS, "run_oauth_session_cleanup", OAuthSession.objects.all()) == 302
    assert not OAuthSession.objects.exists()

    runs = TaskRun.objects.order_by("pk")
    assert [(run.task, run.trigger, run.status) for run in runs] == [
        ("pkce_cleanup", "admin", "succeeded"),
        ("oauth_session_cleanup", "admin", "succeeded"),
    ]


def test_run_task_alone_neither_retries_emails_nor_pauses(runner):
    (failed,) = make_due(1)
    ScheduledEmail.objects.filter(pk=failed.pk).update(status="failed")
    page = runner.get(EMAILS).content.decode()
    assert 'value="run_scheduled_emails"' in page and 'value="retry_now"' not in page

    assert act(runner, EMAILS, "retry_now", [failed]) == 403
    pause = reverse("admin:maintenance_task_pause", args=["pkce_cleanup"])
    assert runner.post(pause, {"reason": "x"}).status_code == 403

    assert ScheduledEmail.objects.get().status == "failed"
    assert not TaskPause.objects.exists()


def test_change_scheduledemail_retries_and_cancels_but_runs_nothing(django_user_model):
    editor = staff_client(django_user_model, "editor", "emails.change_scheduledemail")
    failed, pending = make_due(2)
    ScheduledEmail.objects.filter(pk=failed.pk).update(status="failed")

    assert act(editor, EMAILS, "run_scheduled_emails", [pending]) == 403
    assert act(editor, EMAILS, "retry_now", [failed]) == 302
    assert act(editor, EMAILS, "cancel_pending", [pending]) == 302

    assert (state_of(failed), state_of(pending)) == (("pending", 0), ("cancelled", 0))
    assert not TaskRun.objects.exists()


def test_a_superuser_runs_retries_and_pauses(admin_client, expired_state):
    page = admin_client.get(INDEX).content.decode()
    assert "Run now" in page and "Pause&hellip;" in page

    assert act(admin_client, PKCE_STATES, "run_pkce_cleanup", [expired_state]) == 302
    assert not PKCEState.objects.exists()
    (failed,) = make_due(1)
    ScheduledEmail.objects.filter(pk=failed.pk).update(status="failed")
    assert act(admin_client, EMAILS, "retry_now", [failed]) == 302
    assert ScheduledEmail.objects.get().status == "pending"
    pause = reverse("admin:maintenance_task_pause", args=["pkce_cleanup"])
    assert admin_client.post(pause, {"reason": "x"}).status_code == 302
    assert TaskPause.objects.get().paused_by == "admin"
    assert TaskRun.objects.get().task == "pkce_cleanup"
