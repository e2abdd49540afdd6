"""The one wall-clock check of ticks: `run_scheduler` wakes at a whole minute, on time."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from maintenance.models import RunStatus, TaskRun, Trigger
from tests.processes import manage, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LATE_MS_BAR = 2000


def test_run_scheduler_serves_the_next_whole_minute_within_two_seconds():
    worker = manage("run_scheduler", PKCE_CLEANUP_CRON="* * * * *", IN_PROCESS_SCHEDULER="false")

    def served_after(since) -> TaskRun | None:
        runs = TaskRun.objects.filter(
            task="pkce_cleanup", trigger=Trigger.SCHEDULER, started_at__gt=since
        )
        return runs.exclude(status=RunStatus.RUNNING).first()

    try:
        # The startup run first (however slow the process was to start), then the wake-up
        # at the next whole minute, which is what this test is about.
        started = timezone.now()
        startup = wait_for(lambda: served_after(started - timedelta(minutes=5)), 60)
        waiting_since = timezone.now()
        run = wait_for(
            lambda: (
                TaskRun.objects.filter(
                    task="pkce_cleanup", trigger=Trigger.SCHEDULER, tick__gt=waiting_since
                )
                .exclude(status=RunStatus.RUNNING)
                .first()
            ),
            timeout=75,
        )
    finally:
        os.kill(worker.pid, signal.SIGTERM)
        output = worker.communicate(timeout=30)[1]

    assert startup is not None, f"no startup run:\n{output[-3000:]}"
    assert run is not None, f"no run at the next whole minute:\n{output[-3000:]}"
    assert run.status == RunStatus.SUCCEEDED
    assert run.tick.second == 0 and run.tick.microsecond == 0
    assert 0 <= run.late_ms < LATE_MS_BAR, run.late_ms
