"""A runner killed with SIGKILL mid-batch: nothing lost, at most the in-flight email repeated."""

from __future__ import annotations

import os
import signal

import pytest
from django.utils import timezone

from emails.models import ScheduledEmail
from maintenance.models import TaskRun
from maintenance.runs.runner import run_task
from tests.factories import make_due, statuses
from tests.processes import manage, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Long enough that a loaded machine still kills the runner inside its lease, short enough
# that the test then waits for it to lapse.
LEASE_SECONDS = 8


def test_killed_runner_loses_nothing_and_the_next_run_sends_the_rest(slow_smtp_server, settings):
    settings.CLOUD_DEPLOY = True
    make_due(200)
    runner = manage(
        "process_scheduled_emails",
        CLOUD_DEPLOY="true",
        EMAIL_URL=slow_smtp_server.url,
        SCHEDULED_EMAILS_BATCH_SIZE="50",
        SCHEDULED_EMAILS_CONNECTIONS="1",  # one lane: one message in flight (see test_lanes)
        SCHEDULED_EMAILS_LEASE_SECONDS=str(LEASE_SECONDS),
        MAINTENANCE_LOCK_LEASE_SECONDS=str(LEASE_SECONDS),
    )
    assert wait_for(lambda: len(slow_smtp_server.messages) >= 20, timeout=60, interval=0.05)
    os.kill(runner.pid, signal.SIGKILL)
    runner.communicate(timeout=30)

    assert ScheduledEmail.objects.count() == 200
    leased = ScheduledEmail.objects.filter(status="sending")
    assert leased.exists(), "the kill should land mid-batch"
    assert not ScheduledEmail.objects.claimable(timezone.now()).filter(status="sending").exists()

    assert wait_for(
        lambda: timezone.now() > max(row.claimed_until for row in leased.all()), 60, 0.05
    )
    # ... and the dead runner's hold on the task (renewed until the kill) has lapsed too
    held = TaskRun.objects.filter(status="running")
    assert wait_for(lambda: list(held) == list(held.lapsed()), 60)
    slow_smtp_server.recorder.delay = 0
    outcome = run_task("scheduled_emails", "scheduler")

    assert outcome.success, outcome.error
    assert statuses() == {"sent": 200}
    received = slow_smtp_server.received()
    assert len(received) == 200
    repeated = [address for address, count in received.items() if count > 1]
    assert len(repeated) <= 1
    assert max(received.values()) <= 2
