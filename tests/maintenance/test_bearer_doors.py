"""Every Bearer front door refuses a missing or wrong token the same way: 401, the Bearer
challenge, and not one database query (so a stranger can neither run nor time anything).
Written once here for a fake task's endpoint, the real tasks' SPEC paths, status and
metrics."""

from __future__ import annotations

import pytest

from maintenance.models import TaskRun
from tests.assertions import BAD_BEARER_HEADERS, assert_unauthorized, authorization
from tests.factories import counting_task

pytestmark = pytest.mark.django_db

FAKE = "/test/demo"
DOORS = [
    pytest.param(FAKE, "post", id="fake-task-post"),
    pytest.param(FAKE, "get", id="fake-task-get"),
    pytest.param("/api/oauth/cleanup-pkce", "post", id="pkce-cleanup-spec-path"),
    pytest.param("/api/oauth/cleanup-sessions", "get", id="session-cleanup-spec-path"),
    pytest.param("/api/emails/process-scheduled", "post", id="scheduled-emails-spec-path"),
    pytest.param("/api/maintenance/status", "get", id="status"),
    pytest.param("/metrics", "get", id="metrics"),
]


@pytest.fixture
def calls(mounted_registry):
    """The real tasks (their SPEC paths stay mounted) plus the fake `demo` at FAKE."""
    for real in mounted_registry.real_tasks:
        mounted_registry.register(real)
    task, calls = counting_task(path=FAKE)
    mounted_registry.mount(task)
    return calls


@pytest.mark.parametrize("header", BAD_BEARER_HEADERS)
@pytest.mark.parametrize(("url", "method"), DOORS)
def test_a_missing_or_wrong_token_is_401_without_a_query(
    client, cron_secret, calls, django_assert_num_queries, url, method, header
):
    with django_assert_num_queries(0):
        response = getattr(client, method)(url, **authorization(header))

    assert_unauthorized(response)
    assert calls == []
    assert not TaskRun.objects.exists()
