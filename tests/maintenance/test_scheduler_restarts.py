"""The in-process scheduler's thread outlives a bug in its loop: the loop is started again
after a logged error and a backoff, and status shows the restarts and the last error of
the process that answers."""

from __future__ import annotations

import io
import logging
import os
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from maintenance.observe import scheduler_health
from maintenance.runs import clock
from maintenance.triggers.scheduler import Scheduler, restart_delay
from tests import factories
from tests.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

CRASHED = "maintenance.scheduler.crashed"


@pytest.fixture
def counted(isolated_registry) -> list[int]:
    """A task the scheduler runs at its start: the calls it got."""
    calls: list[int] = []
    task = factories.fake_task("count", lambda: calls.append(1) or {}, run_at_startup=True)
    isolated_registry.register(task)
    return calls


def clock_failing(monkeypatch, times: int | None, message: str) -> None:
    """The scheduler's clock raises `times` times (None: always), then tells the time."""
    left = [times]

    def now():
        if left[0] is None or left[0] > 0:
            left[0] = None if left[0] is None else left[0] - 1
            raise RuntimeError(message)
        return timezone.now()

    monkeypatch.setattr(clock, "now", now)


@pytest.fixture
def in_process(monkeypatch):
    """Start a scheduler thread as this process's own (status reports it); stop it after."""
    started: list[Scheduler] = []

    def start() -> Scheduler:
        scheduler = Scheduler()
        monkeypatch.setattr(scheduler_health, "_in_process", scheduler.health)
        scheduler.start_thread()
        started.append(scheduler)
        return scheduler

    yield start
    for scheduler in started:
        scheduler.stop()


def crash_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", "") == CRASHED]


def test_a_loop_that_raises_is_restarted_logged_and_shown_in_status(
    counted, in_process, monkeypatch, caplog, auth_header, cron_secret
):
    caplog.set_level(logging.INFO, logger="maintenance.scheduler")
    clock_failing(monkeypatch, 1, f"clock broke (token {cron_secret})")

    scheduler = in_process()

    assert wait_for(lambda: counted, timeout=30), "the restarted loop ran nothing"
    assert scheduler.thread.is_alive()
    (crash,) = crash_records(caplog)
    assert crash.levelno == logging.ERROR and crash.exc_info is not None
    assert "restart_in=1s" in crash.getMessage()
    body = Client().get("/api/maintenance/status", **auth_header).json()
    assert body["scheduler"] == {
        "pid": os.getpid(),
        "running": True,
        "restarts": 1,
        "lastError": "RuntimeError: clock broke (token [redacted])",
        "lastErrorAt": body["scheduler"]["lastErrorAt"],
    }
    assert body["scheduler"]["lastErrorAt"].endswith("Z")
    assert set(body) == {"healthy", "timestamp", "tasks", "backlog", "scheduler"}
    out = io.StringIO()
    call_command("maintenance_status", stdout=out)
    assert f"Scheduler thread: running (pid {os.getpid()}); restarted 1 times" in out.getvalue()
    assert cron_secret not in out.getvalue()


def test_a_loop_that_keeps_crashing_backs_off_and_stops_when_asked(
    counted, in_process, monkeypatch, caplog
):
    clock_failing(monkeypatch, None, "clock gone for good")

    scheduler = in_process()
    assert wait_for(lambda: len(crash_records(caplog)) >= 2, timeout=30)
    began = time.monotonic()
    scheduler.stop()  # during the 2 s wait before the second restart

    first, second = crash_records(caplog)[:2]
    assert second.created - first.created >= 0.9, "restarted without waiting"
    assert "restart_in=2s" in second.getMessage()
    assert (scheduler.health.restarts, scheduler.health.running) == (1, False)
    assert not scheduler.thread.is_alive() and time.monotonic() - began < 1.5
    assert counted == []


def test_the_backoff_doubles_from_one_second_up_to_a_minute():
    assert [restart_delay(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert restart_delay(10_000) == 60


def test_a_process_without_a_scheduler_says_so(counted, auth_header):
    body = Client().get("/api/maintenance/status", **auth_header).json()
    out = io.StringIO()
    with pytest.raises(CommandError):  # `count` never ran: unhealthy, the text is printed
        call_command("maintenance_status", stdout=out)

    assert body["scheduler"] == {
        "pid": os.getpid(),
        "running": False,
        "restarts": 0,
        "lastError": None,
        "lastErrorAt": None,
    }
    assert "Scheduler thread: none running in this process" in out.getvalue()
