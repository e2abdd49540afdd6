"""A scheduler that stops (the process exits: a gunicorn worker recycled or sent SIGTERM,
`run_scheduler` told to stop) stops its run in progress between batches or messages and
closes it `failed` with the reason, handing its claimed emails back at once, instead of
leaving the row `running` and the emails `sending` for their leases."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from emails.outbox.run import process_scheduled_emails
from maintenance.models import RunStatus, TaskRun
from maintenance.runs import deadlines
from maintenance.schedules import cron
from maintenance.triggers.scheduler import Scheduler
from oauth.models import PKCEState
from tests.emails.test_interrupted_runs import nothing_held_or_repeated
from tests.factories import fake_task, make_due, make_slow_backlog, statuses
from tests.maintenance.test_scheduler import start, stop
from tests.processes import MANAGE, PYTHON, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

HOURLY = cron.parse("0 * * * *")
TICK = HOURLY.latest_tick(timezone.now()) - timedelta(hours=5)
STOPPED = "Interrupted: the process is shutting down (scheduler stopped)"
EMAILS = 20


def test_stop_ends_the_run_in_progress_at_its_next_check_and_closes_it(isolated_registry, at):
    started, batches = threading.Event(), []

    def batch_after_batch() -> dict:
        started.set()
        while len(batches) < 600:  # 30 s, unless something stops it
            deadlines.current().check({"batches": len(batches)})
            batches.append(1)
            time.sleep(0.05)
        return {"count": len(batches)}

    isolated_registry.register(
        fake_task("demo", batch_after_batch, cron="0 * * * *", run_at_startup=True)
    )
    scheduler = Scheduler()
    scheduler.start_thread()
    assert started.wait(30)
    began = time.monotonic()
    scheduler.stop()

    assert not scheduler.thread.is_alive()
    assert time.monotonic() - began < 5
    run = TaskRun.objects.get()
    assert (run.status, run.error) == (RunStatus.FAILED, STOPPED)
    assert run.result == {"batches": len(batches)} and len(batches) < 600


def test_stop_during_an_email_run_hands_the_batch_back(isolated_registry, at, slow_smtp_server):
    slow_smtp_server.recorder.delay = 0.5  # 20 emails: 10 s at the server
    make_due(EMAILS)
    email_run = fake_task(
        "emails",
        process_scheduled_emails,
        message="Sent {sent}",
        cron="0 * * * *",
        run_at_startup=True,
    )
    isolated_registry.register(email_run)
    scheduler = Scheduler()
    scheduler.start_thread()
    assert wait_for(lambda: len(slow_smtp_server.messages) >= 2, timeout=60, interval=0.05)
    scheduler.stop()

    assert not scheduler.thread.is_alive()
    run = TaskRun.objects.get()
    assert (run.status, run.error) == (RunStatus.FAILED, STOPPED)
    sent = nothing_held_or_repeated(slow_smtp_server)
    assert 0 < sent < EMAILS and run.result["sent"] == sent
    assert statuses() == {"sent": sent, "pending": EMAILS - sent}


@pytest.mark.postgres
@pytest.mark.slow
def test_sigterm_to_run_scheduler_mid_run_closes_the_run():
    """The worker container's scheduler: SIGTERM in the middle of its startup cleanup (one
    row per batch) stops the cleanup at its next batch, and the process exits cleanly."""
    make_slow_backlog(20_000)
    worker = start(
        [PYTHON, MANAGE, "run_scheduler"],
        IN_PROCESS_SCHEDULER="false",
        MAINTENANCE_DELETE_BATCH_SIZE="1",
    )
    try:
        assert wait_for(lambda: PKCEState.objects.count() < 19_900, timeout=60, interval=0.05)
    finally:
        output = stop(worker)

    assert worker.returncode == 0, output
    assert "maintenance.scheduler.stopped" in output
    run = TaskRun.objects.get(task="pkce_cleanup")
    assert run.status == RunStatus.FAILED, output
    assert run.error == "Interrupted: the process is shutting down (SIGTERM)"
    assert 0 < run.result["deletedCount"] == 20_000 - PKCEState.objects.count() < 20_000
    assert not TaskRun.objects.filter(status=RunStatus.RUNNING).exists()
