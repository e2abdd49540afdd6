from __future__ import annotations

import pytest
from django.db import connection

from maintenance import registry
from tests.smtp_server import slow_smtp_server, smtp_down, smtp_server  # noqa: F401

SECRET = "s3cret-token-for-tests-0123456789abcdef"


@pytest.fixture
def cron_secret(settings) -> str:
    settings.CRON_SECRET = SECRET
    return SECRET


@pytest.fixture
def auth_header(cron_secret) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {cron_secret}"}


@pytest.fixture
def isolated_registry():
    """An empty task registry for the test, the real one restored afterwards."""
    previous = registry.reset()
    yield registry
    registry.reset(previous)


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (covered by the PostgreSQL pass of `make test`)")
