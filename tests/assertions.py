"""Assertions several test modules make, written once: what a refused Bearer request and a
skipped run look like to the caller."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.http import HttpResponse

from maintenance.models import RunStatus, TaskRun
from tests.conftest import SECRET

BAD_BEARER_HEADERS = [
    pytest.param(None, id="missing"),
    pytest.param("", id="empty"),
    pytest.param("Bearer", id="scheme-only"),
    pytest.param("Bearer ", id="empty-token"),
    pytest.param(f"Basic {SECRET}", id="wrong-scheme"),
    pytest.param(SECRET, id="no-scheme"),
    pytest.param(f"bearer{SECRET}", id="no-space"),
    pytest.param(f"Bearer  {SECRET}", id="double-space"),
    pytest.param(f"Bearer {SECRET} extra", id="trailing-word"),
    pytest.param(f"Bearer {SECRET}x", id="longer-token"),
    pytest.param(f"Bearer {SECRET[:-1]}", id="prefix-of-token"),
    pytest.param("Bearer wrong-secret", id="wrong-token"),
    pytest.param("Bearer s3cr\u00e9t", id="non-ascii"),
    pytest.param(f"Bearer {SECRET}\t", id="trailing-tab"),
]


def authorization(header: str | None) -> dict[str, str]:
    """Client keyword arguments sending `header` as Authorization (None: no header)."""
    return {} if header is None else {"HTTP_AUTHORIZATION": header}


def assert_unauthorized(response: HttpResponse) -> None:
    """401, the Bearer challenge, a body that names nothing (not even the secret)."""
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"success": False, "error": "Unauthorized"}
    assert SECRET not in response.content.decode()


def assert_skipped_body(body: dict[str, Any], run: TaskRun, *, success: bool, says: str) -> None:
    """The answer of a front door whose run was skipped: `success` (true for a lock or a
    pause, false for a closed gate), `skipped`, a message that says `says`, and a
    skipped `TaskRun` row behind it."""
    run.refresh_from_db()
    assert run.status == RunStatus.SKIPPED
    assert (body["success"], body["skipped"]) == (success, True)
    assert (body["runId"], body["task"]) == (run.pk, run.task)
    assert says in body["message"], body["message"]


def stopped_at_the_budget(client, url: str, headers: dict[str, str]) -> tuple[dict, float]:
    """POST `url` and check the answer of a run its HTTP budget stopped: a 200 success
    marked `budgetExhausted`, its run `succeeded`; the body and the seconds it took."""
    began = time.monotonic()
    response = client.post(url, **headers)
    took = time.monotonic() - began
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["budgetExhausted"] is True
    assert TaskRun.objects.get(pk=body["runId"]).status == RunStatus.SUCCEEDED
    return body, took
