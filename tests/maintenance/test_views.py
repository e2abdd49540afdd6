"""The token-checked task endpoint, seen from an HTTP client: a fake task mounted at a test
path for the endpoint's own rules, and PKCE cleanup at its SPEC path, end to end."""

from __future__ import annotations

import pytest
from django.test import Client

from maintenance.models import TaskRun
from oauth.models import PKCEState
from tests.assertions import assert_unauthorized
from tests.conftest import SECRET
from tests.factories import counting_task, fake_task, make_state

URL = "/test/demo"
pytestmark = pytest.mark.django_db


@pytest.fixture
def calls(mounted_registry):
    """The fake task `demo`, served at URL: the options of each run it got."""
    task, calls = counting_task(path=URL)
    mounted_registry.mount(task)
    return calls


def test_the_spec_pkce_endpoint_deletes_only_expired_states_end_to_end(client, auth_header):
    make_state("a", expired=True)
    make_state("b", expired=False)

    response = client.post("/api/oauth/cleanup-pkce", **auth_header)

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["task"] == "pkce_cleanup"
    assert body["deletedCount"] == 1
    assert list(PKCEState.objects.values_list("state", flat=True)) == ["b" * 43]
    run = TaskRun.objects.get(pk=body["runId"])
    assert (run.task, run.trigger, run.status) == ("pkce_cleanup", "http", "succeeded")
    assert run.result == {"deletedCount": 1}


def test_post_with_the_right_token_runs_the_task_and_logs_the_run(client, auth_header, calls):
    response = client.post(URL, **auth_header)

    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["task"], body["count"]) == (True, "demo", 1)
    assert body["message"] == "Did 1 things"
    assert body["timestamp"].endswith("Z")
    assert isinstance(body["durationMs"], int)
    assert calls == [{}]
    run = TaskRun.objects.get(pk=body["runId"])
    assert (run.task, run.trigger, run.status) == ("demo", "http", "succeeded")
    assert run.result == {"count": 1}


def test_get_with_the_right_token_runs_the_task_as_vercel_cron_does(client, auth_header, calls):
    response = client.get(URL, **auth_header)

    assert response.status_code == 200
    assert response.json()["count"] == 1
    assert "note" not in response.json()
    assert len(calls) == 1


def test_scheme_name_is_case_insensitive(client, cron_secret, calls):
    response = client.post(URL, HTTP_AUTHORIZATION=f"bearer {cron_secret}")

    assert response.status_code == 200
    assert len(calls) == 1


@pytest.mark.parametrize("secret", [None, ""])
def test_unset_cron_secret_closes_the_endpoint(
    client, settings, calls, django_assert_num_queries, secret
):
    settings.CRON_SECRET = secret

    with django_assert_num_queries(0):
        response = client.post(URL, HTTP_AUTHORIZATION="Bearer anything")

    assert response.status_code == 503
    body = response.json()
    assert body["success"] is False
    assert "CRON_SECRET" in body["error"]
    assert calls == []


def test_get_without_token_is_refused_when_debug_is_off(client, cron_secret, calls):
    response = client.get(URL)

    assert response.status_code == 401
    assert calls == []


def test_get_without_token_runs_with_a_note_under_debug_while_no_secret_is_set(
    client, settings, calls
):
    settings.DEBUG = True
    settings.CRON_SECRET = None

    response = client.get(URL)

    assert response.status_code == 200
    assert response.json()["count"] == 1
    assert "DEBUG" in response.json()["note"]
    assert TaskRun.objects.get().trigger == "http"


def test_debug_does_not_open_get_without_a_token_once_a_secret_is_set(
    client, settings, cron_secret, calls, django_assert_num_queries
):
    settings.DEBUG = True

    with django_assert_num_queries(0):
        response = client.get(URL)

    assert_unauthorized(response)
    assert calls == []
    assert not TaskRun.objects.exists()


def test_debug_does_not_open_post_without_a_token(client, settings, cron_secret, calls):
    settings.DEBUG = True

    assert client.post(URL).status_code == 401
    assert calls == []


@pytest.mark.parametrize("method", ["put", "patch", "delete", "head", "options"])
def test_other_methods_are_405_with_allow(client, auth_header, calls, method):
    response = getattr(client, method)(URL, **auth_header)

    assert response.status_code == 405
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    assert calls == []


def test_no_csrf_token_is_needed(auth_header, calls):
    client = Client(enforce_csrf_checks=True)

    assert client.post(URL, **auth_header).status_code == 200


def test_a_failing_task_answers_500_without_a_traceback(client, auth_header, mounted_registry):
    def explode(**options):
        raise RuntimeError("disk on fire")

    mounted_registry.mount(fake_task(func=explode, path=URL))

    response = client.post(URL, **auth_header)

    assert response.status_code == 500
    body = response.json()
    assert body["success"] is False
    assert body["error"] == "RuntimeError: disk on fire"
    assert "traceback" not in body
    run = TaskRun.objects.get(pk=body["runId"])
    assert run.status == "failed"
    assert "disk on fire" in run.error


def test_the_secret_never_appears_in_responses_or_run_log(client, auth_header, calls):
    response = client.post(URL, **auth_header)

    assert SECRET not in response.content.decode()
    assert not TaskRun.objects.filter(result__icontains=SECRET).exists()


def test_healthz_is_ok_without_auth(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
