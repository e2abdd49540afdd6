"""mcp-remote OAuth sessions: the model, the `oauth_session_cleanup` task and its front doors."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from maintenance.models import RunStatus, TaskRun
from oauth.models import OAuthSession
from oauth.sessions import create_session

pytestmark = pytest.mark.django_db

SERVER = uuid.uuid4()
PROFILE = uuid.uuid4()


@pytest.fixture
def past_and_future() -> tuple[OAuthSession, OAuthSession]:
    """One session that expired a minute ago, one that expires in a minute."""
    past = create_session(SERVER, PROFILE, "https://app.example/cb", "github")
    past.expires_at = timezone.now() - timedelta(minutes=1)
    past.save(update_fields=["expires_at"])
    future = create_session(SERVER, PROFILE, "https://app.example/cb", "github")
    future.expires_at = timezone.now() + timedelta(minutes=1)
    future.save(update_fields=["expires_at"])
    return past, future


def test_new_session_lives_for_the_configured_ttl(settings):
    settings.OAUTH_SESSION_TTL_SECONDS = 120
    session = create_session(SERVER, PROFILE, "https://app.example/cb", "github")
    assert session.expires_at - session.created_at == timedelta(seconds=120)
    assert len(session.state) >= 43
    assert not session.is_expired


def test_table_is_named_for_operators():
    assert OAuthSession._meta.db_table == "mcp_oauth_sessions"
    assert "mcp_oauth_sessions" in connection.introspection.table_names()


def test_command_deletes_only_the_expired_session(past_and_future, capsys):
    _past, future = past_and_future
    call_command("cleanup_oauth_sessions", "--json")
    body = json.loads(capsys.readouterr().out)
    assert body["success"] is True
    assert body["task"] == "oauth_session_cleanup"
    assert body["deletedCount"] == 1
    assert list(OAuthSession.objects.values_list("pk", flat=True)) == [future.pk]
    run = TaskRun.objects.get(pk=body["runId"])
    assert (run.trigger, run.status) == ("command", RunStatus.SUCCEEDED)


def test_dry_run_counts_and_deletes_nothing(past_and_future, capsys):
    call_command("cleanup_oauth_sessions", "--json", "--dry-run")
    body = json.loads(capsys.readouterr().out)
    assert (body["deletedCount"], body["expiredCount"], body["dryRun"]) == (0, 1, True)
    assert OAuthSession.objects.count() == 2


def test_command_prints_one_line_without_json(past_and_future, capsys):
    call_command("cleanup_oauth_sessions")
    out = capsys.readouterr().out
    assert out.startswith("Deleted 1 expired OAuth sessions (run ")


def test_endpoint_deletes_expired_sessions_with_the_token(past_and_future, client, auth_header):
    response = client.post("/api/oauth/cleanup-sessions", **auth_header)
    assert response.status_code == 200
    assert response.json()["deletedCount"] == 1
    assert OAuthSession.objects.count() == 1


def test_endpoint_refuses_a_wrong_token_and_deletes_nothing(past_and_future, client, cron_secret):
    response = client.post("/api/oauth/cleanup-sessions", HTTP_AUTHORIZATION="Bearer wrong")
    assert response.status_code == 401
    assert OAuthSession.objects.count() == 2


def test_backlog_counts_expired_sessions(past_and_future):
    from maintenance import registry

    assert registry.get("oauth_session_cleanup").pending() == {"expired_oauth_sessions": 1}


def test_admin_lists_sessions_filtered_by_expiry(past_and_future, admin_client):
    past, future = past_and_future
    url = "/admin/oauth/oauthsession/"
    expired = admin_client.get(url, {"expiry": "expired"})
    active = admin_client.get(url, {"expiry": "active"})
    assert expired.status_code == active.status_code == 200
    assert past.state[:12] in expired.text and future.state[:12] not in expired.text
    assert future.state[:12] in active.text and past.state[:12] not in active.text


def test_failure_exits_with_one_line_naming_the_database_error(past_and_future):
    # A real failure, no mock: the table is gone (the test's transaction restores it).
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE mcp_oauth_sessions RENAME TO mcp_oauth_sessions_gone")
    with pytest.raises(CommandError, match=r"^oauth_session_cleanup failed: \w+Error: "):
        call_command("cleanup_oauth_sessions")
