from __future__ import annotations

import importlib
import os
import subprocess
import uuid
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.urls import clear_url_caches

from maintenance import registry
from maintenance.runs import clock
from tests import pgbouncer, tools
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
def at(monkeypatch, request):
    """Set the clocks the runner and the scheduler read (the database's reading a trigger
    goes by, and this host's): `at(datetime)`. It starts 3 s after the test module's
    `TICK`, so each module's tests begin on a tick of its own schedule and no test waits
    for a real one. Leases and expiries stay on the database's real clock."""

    def move(moment: datetime) -> None:
        monkeypatch.setattr(clock, "now", lambda: moment)
        monkeypatch.setattr(clock, "database", lambda reading: moment)

    move(request.module.TICK + timedelta(seconds=3))
    return move


@pytest.fixture
def demo(isolated_registry):
    """The fake task `demo` (every 5 minutes) alone in the registry: the options of each
    call it got (`tests.factories.Calls`), so a test sees whether and how it ran."""
    from tests.factories import counting_task

    task, calls = counting_task()
    isolated_registry.register(task)
    return calls


@pytest.fixture
def other(demo, isolated_registry):
    """A second counting fake task, `other`, next to `demo`: the calls it got."""
    from tests.factories import counting_task

    task, calls = counting_task("other")
    isolated_registry.register(task)
    return calls


def reload_task_urls() -> None:
    """`maintenance/urls.py` mounts the registered tasks' paths at import: rebuild it."""
    import maintenance.urls
    import pluggedin.urls

    importlib.reload(maintenance.urls)
    importlib.reload(pluggedin.urls)
    clear_url_caches()


@pytest.fixture
def mounted_registry():
    """Like `isolated_registry`, with `mounted_registry.mount(task)` registering a task and
    serving it at its `path`; the real tasks and their URLs are restored afterwards."""

    class Mounted:
        real_tasks: list[registry.Task] = []

        @staticmethod
        def register(task: registry.Task) -> registry.Task:
            registry.register(task)
            reload_task_urls()
            return task

        mount = register

    previous = registry.reset()
    Mounted.real_tasks = previous
    yield Mounted()
    registry.reset(previous)
    reload_task_urls()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.postgres`, the one way to mark a test that needs PostgreSQL: skipped in
    the SQLite pass, run in the PostgreSQL pass of `make test`."""
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (covered by the PostgreSQL pass of `make test`)")


@pytest.fixture(scope="session", autouse=True)
def pooled_test_database_droppable(request):
    """Behind the pooler of `make test-pgbouncer`, the pooler keeps idle server connections
    to the test database, and PostgreSQL refuses to drop a database in use: end them after
    the last test, before the test database is dropped."""
    if not os.environ.get(pgbouncer.PORT_VARIABLE):
        yield
        return
    request.getfixturevalue("django_db_setup")  # so this teardown runs before its own
    blocker = request.getfixturevalue("django_db_blocker")
    yield
    from django.db import connections

    name = connection.settings_dict["NAME"]
    connections.close_all()
    with blocker.unblock(), connection._nodb_cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )


@pytest.fixture
def throwaway_crontab(settings):
    """A fresh unix user whose crontab django-crontab reads and writes (through the real
    `crontab` binary), so tests never touch the crontab of the user running them."""
    if os.geteuid() != 0:
        if tools.in_ci():
            pytest.fail("crontab tests need root in CI")
        pytest.skip("needs root (to create a throwaway user)")
    crontab, useradd = tools.requires_tool("crontab", "useradd")
    name = f"pgops{uuid.uuid4().hex[:12]}"  # one per test: a user still in use is not reused
    subprocess.run(
        [useradd, "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    settings.CRONTAB_EXECUTABLE = f"{crontab} -u {name}"
    try:
        yield name
    finally:
        subprocess.run([crontab, "-u", name, "-r"], capture_output=True)
        subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def other_tasks_healthy(db) -> None:
    """Record a fresh success for every registered task but `pkce_cleanup`, so status
    tests can watch that one task alone."""
    from django.utils import timezone

    from maintenance.models import TaskRun

    now = timezone.now()
    for name in registry.names():
        if name != "pkce_cleanup":
            TaskRun.objects.create(task=name, trigger="cron", status="succeeded", finished_at=now)
