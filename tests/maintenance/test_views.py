"""The token-checked task endpoint, seen from an HTTP client (here: PKCE cleanup)."""

from __future__ import annotations

import pytest
from django.test import Client

from maintenance.models import TaskRun
from oauth.models import PKCEState
from tests.conftest import SECRET
from tests.factories import make_state

URL = "/api/oauth/cleanup-pkce"
pytestmark = pytest.mark.django_db


@pytest.fixture
def states():
    return make_state("a", expired=True), make_state("b", expired=False)


def test_post_with_the_right_token_deletes_only_expired_states(client, auth_header, states):
    response = client.post(URL, **auth_header)

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["task"] == "pkce_cleanup"
    assert body["deletedCount"] == 1
    assert body["timestamp"].endswith("Z")
    assert isinstance(body["durationMs"], int)
    assert list(PKCEState.objects.values_list("state", flat=True)) == ["b" * 43]
    run = TaskRun.objects.get(pk=body["runId"])
    assert (run.task, run.trigger, run.status) == ("pkce_cleanup", "http", "succeeded")
    assert run.result == {"deletedCount": 1}


def test_get_with_the_right_token_runs_the_task_as_vercel_cron_does(client, auth_header, states):
    response = client.get(URL, **auth_header)

    assert response.status_code == 200
    assert response.json()["deletedCount"] == 1
    assert "note" not in response.json()


BAD_HEADERS = [
    pytest.param(None, id="missing"),
    pytest.param("", id="empty"),
    pytest.param("Bearer", id="scheme-only"),
    pytest.param("Bearer ", id="empty-token"),
    pytest.param(f"Basic {SECRET}", id="wrong-scheme"),
    pytest.param(SECRET, id="no-scheme"),
    pytest.param(f"Bearer  {SECRET}", id="double-space"),
    pytest.param(f"Bearer {SECRET} extra", id="trailing-word"),
    pytest.param(f"Bearer {SECRET}x", id="longer-token"),
    pytest.param(f"Bearer {SECRET[:-1]}", id="prefix-of-token"),
    pytest.param("Bearer wrong-secret", id="wrong-token"),
    pytest.param("Bearer s3cr\u00e9t", id="non-ascii"),
    pytest.param(f"Bearer {SECRET}\t", id="trailing-tab"),
]


@pytest.mark.parametrize("header", BAD_HEADERS)
@pytest.mark.parametrize("method", ["get", "post"])
def test_bad_authorization_is_401_without_touching_the_database(
    client, cron_secret, states, django_assert_num_queries, header, method
):
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}

    with django_assert_num_queries(0):
        response = getattr(client, method)(URL, **extra)

    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "Unauthorized"}
    assert response["WWW-Authenticate"] == "Bearer"
    assert PKCEState.objects.count() == 2
    assert not TaskRun.objects.exists()


def test_scheme_name_is_case_insensitive(client, cron_secret):
    response = client.post(URL, HTTP_AUTHORIZATION=f"bearer {cron_secret}")

    assert response.status_code == 200


@pytest.mark.parametrize("secret", [None, ""])
def test_unset_cron_secret_closes_the_endpoint(
    client, settings, states, django_assert_num_queries, secret
):
    settings.CRON_SECRET = secret

    with django_assert_num_queries(0):
        response = client.post(URL, HTTP_AUTHORIZATION="Bearer anything")

    assert response.status_code == 503
    body = response.json()
    assert body["success"] is False
    assert "CRON_SECRET" in body["error"]
    assert PKCEState.objects.count() == 2


def test_get_without_token_is_refused_when_debug_is_off(client, cron_secret, states):
    response = client.get(URL)

    assert response.status_code == 401
    assert PKCEState.objects.count() == 2


def test_get_without_token_runs_with_a_note_when_debug_is_on(client, settings, states):
    settings.DEBUG = True
    settings.CRON_SECRET = "configured-secret-0123456789abcdef"

    response = client.get(URL)

    assert response.status_code == 200
    assert response.json()["deletedCount"] == 1
    assert "DEBUG" in response.json()["note"]


def test_debug_does_not_open_post_without_a_token(client, settings, cron_secret, states):
    settings.DEBUG = True

    assert client.post(URL).status_code == 401


@pytest.mark.parametrize("method", ["put", "patch", "delete", "head", "options"])
def test_other_methods_are_405_with_allow(client, auth_header, states, method):
    response = getattr(client, method)(URL, **auth_header)

    assert response.status_code == 405
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    assert PKCEState.objects.count() == 2


def test_no_csrf_token_is_needed(auth_header, states):
    client = Client(enforce_csrf_checks=True)

    assert client.post(URL, **auth_header).status_code == 200


def test_a_failing_task_answers_500_without_a_traceback(client, auth_header, monkeypatch):
    def explode(**options):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("oauth.tasks.PKCEState.objects.delete_expired", explode)
    # The task function resolves the manager at call time, so the failure is real.

    response = client.post(URL, **auth_header)

    assert response.status_code == 500
    body = response.json()
    assert body["success"] is False
    assert body["error"] == "RuntimeError: disk on fire"
    assert "traceback" not in body
    run = TaskRun.objects.get(pk=body["runId"])
    assert run.status == "failed"
    assert "disk on fire" in run.error


def test_the_secret_never_appears_in_responses_or_run_log(client, auth_header, states):
    response = client.post(URL, **auth_header)

    assert SECRET not in response.content.decode()
    assert not TaskRun.objects.filter(result__icontains=SECRET).exists()


def test_healthz_is_ok_without_auth(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
