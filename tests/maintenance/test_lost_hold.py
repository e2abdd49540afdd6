"""A run that lost its hold on its task stops, and leaves the verdict of the run that took
the task over; and from its claim on, whatever ends a run closes its row.

A runner that stalls past its lease (a paused VM, a long GC pause, a stopped process) has
its row closed `failed` by the next claimant, which then runs. When the stalled run wakes
it must not run beside the new holder, nor write its own end over that verdict."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from maintenance.models import RunStatus, TaskRun, Trigger
from maintenance.runs import deadlines, runner
from maintenance.runs.claims import RUNNER_STOPPED
from maintenance.runs.signals import run_started
from maintenance.schedules import cron
from oauth.models import PKCEState
from tests.factories import fake_task, make_slow_backlog
from tests.processes import manage, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

HOURLY = cron.parse("0 * * * *")
TICK = HOURLY.latest_tick(timezone.now()) - timedelta(hours=3)
LOST = "Lost its hold on the task: its lease ran out and run {run} "


@contextmanager
def first_run(registry, func, trigger: str = Trigger.CRON) -> Iterator[list]:
    """Task `demo` (hourly) run by `trigger` in a thread whose first call is `func`, every
    later call a quick success; the first run's outcome once the block ends."""
    started, calls = threading.Event(), []

    def demo(**options):
        calls.append(1)
        if len(calls) > 1:
            return {"count": 1}
        started.set()
        return func()

    registry.register(fake_task("demo", demo, cron="0 * * * *"))
    outcomes: list = []
    thread = threading.Thread(
        target=lambda: (outcomes.append(runner.run_task("demo", trigger)), connection.close())
    )
    thread.start()
    try:
        assert started.wait(30)
        yield outcomes
    finally:
        thread.join(30)


def taken_over() -> TaskRun:
    """What the next claimant does to a runner whose lease ran out: close its row as
    stopped (`claims.close_stopped`), then claim and run the task itself."""
    stalled = TaskRun.objects.get(status=RunStatus.RUNNING)
    error = RUNNER_STOPPED.format(host=stalled.host, pid=stalled.pid)
    closed = TaskRun.objects.filter(pk=stalled.pk, status=RunStatus.RUNNING)
    assert closed.update(status=RunStatus.FAILED, finished_at=timezone.now(), error=error)
    return stalled


def test_a_run_whose_row_another_claimant_closed_stops_at_its_next_check(
    isolated_registry, settings, at
):
    settings.MAINTENANCE_LOCK_LEASE_SECONDS = 1  # renewed every third of a second
    batches: list[int] = []

    def batch_after_batch() -> dict:
        while len(batches) < 200:  # 10 s, unless something stops it
            deadlines.current().check({"batches": len(batches)})
            batches.append(1)
            time.sleep(0.05)
        return {"count": len(batches)}

    with first_run(isolated_registry, batch_after_batch) as outcomes:
        stalled = taken_over()
        second = runner.run_task("demo", Trigger.CRON)
        assert second.status == RunStatus.SUCCEEDED
        began = time.monotonic()
    assert wait_for(lambda: outcomes, timeout=10)
    took = time.monotonic() - began

    first = outcomes[0]
    assert first.status == RunStatus.FAILED
    assert first.error.startswith(LOST.format(run=second.run_id)), first.error
    assert first.result == {"batches": len(batches)} and len(batches) < 200
    assert took < 5  # stopped at the renewal after the takeover, not after 10 s
    stalled.refresh_from_db()
    assert (stalled.status, stalled.error) == (RunStatus.FAILED, taken_over_error(stalled))
    assert TaskRun.objects.filter(tick=TICK, status=RunStatus.SUCCEEDED).count() == 1


def taken_over_error(run: TaskRun) -> str:
    return RUNNER_STOPPED.format(host=run.host, pid=run.pid)


def test_a_run_that_lost_its_hold_does_not_write_its_end_over_the_takers_verdict(
    isolated_registry,
):
    """A task that never asks its deadline (one long call) still finishes: its end is
    not written, and it reports the lost hold instead of a second success."""
    release = threading.Event()

    with first_run(isolated_registry, lambda: release.wait(30) and {"count": 1}, "command") as out:
        stalled = taken_over()
        second = runner.run_task("demo", Trigger.COMMAND)
        release.set()
    assert wait_for(lambda: out, timeout=10)

    assert second.status == RunStatus.SUCCEEDED
    assert out[0].status == RunStatus.FAILED
    assert out[0].error.startswith(LOST.format(run=second.run_id)), out[0].error
    stalled.refresh_from_db()
    assert (stalled.status, stalled.error) == (RunStatus.FAILED, taken_over_error(stalled))
    succeeded = TaskRun.objects.filter(status=RunStatus.SUCCEEDED)
    assert list(succeeded.values_list("pk", flat=True)) == [second.run_id]


def test_an_exit_while_observers_hear_of_the_start_closes_the_run(isolated_registry):
    """The run holds its task from its claim: an observer of its start that ends the
    process (a SystemExit in a receiver) leaves it `failed`, not `running`."""
    isolated_registry.register(fake_task("demo"))

    def exits(**kwargs) -> None:
        raise SystemExit(3)

    run_started.connect(exits, dispatch_uid="test-exits")
    try:
        with pytest.raises(SystemExit):
            runner.run_task("demo", Trigger.COMMAND)
    finally:
        run_started.disconnect(dispatch_uid="test-exits")

    run = TaskRun.objects.get()
    assert (run.status, run.error) == (
        RunStatus.FAILED,
        "Interrupted: SystemExit(3) (the process is exiting)",
    )
    assert runner.run_task("demo", Trigger.COMMAND).status == RunStatus.SUCCEEDED


def test_a_slow_start_ping_does_not_lose_the_lease(isolated_registry, settings):
    """A heartbeat's /start ping may take its whole timeout: the lease is renewed
    meanwhile, so no other trigger takes the task from the run."""
    settings.MAINTENANCE_LOCK_LEASE_SECONDS = 1
    isolated_registry.register(fake_task("demo"))
    answers: list = []

    def slow_ping(**kwargs) -> None:
        if answers:  # the run started below, should it win, pings too
            return
        answers.append("pinged")
        time.sleep(2.5)  # more than twice the lease
        answers.append(runner.run_task("demo", Trigger.COMMAND))

    run_started.connect(slow_ping, dispatch_uid="test-slow-ping")
    try:
        first = runner.run_task("demo", Trigger.COMMAND)
    finally:
        run_started.disconnect(dispatch_uid="test-slow-ping")

    assert first.status == RunStatus.SUCCEEDED
    assert answers[1].skipped, answers[1].message


@pytest.mark.postgres
@pytest.mark.slow
def test_a_stalled_process_woken_after_the_takeover_stops_and_keeps_the_takers_verdict():
    """The scenario itself, with real processes: a cleanup stopped (SIGSTOP) past its
    lease, a second cleanup of the same tick takes the task and succeeds, the first is
    woken (SIGCONT) and ends failed, saying it lost its hold."""
    make_slow_backlog(20_000)
    env = {"MAINTENANCE_LOCK_LEASE_SECONDS": "1", "MAINTENANCE_DELETE_BATCH_SIZE": "1"}
    first = manage("cleanup_pkce", "--trigger", "cron", "--json", **env)
    try:
        assert wait_for(lambda: PKCEState.objects.count() < 19_900, timeout=60, interval=0.05)
        os.kill(first.pid, signal.SIGSTOP)
        time.sleep(2)  # past its lease
        env["MAINTENANCE_DELETE_BATCH_SIZE"] = "10000"
        second = manage("cleanup_pkce", "--trigger", "cron", "--json", **env)
        second_out, _ = second.communicate(timeout=60)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    first_out, first_err = first.communicate(timeout=60)

    assert second.returncode == 0, second_out
    assert first.returncode == 1, (first_out, first_err)
    assert "Lost its hold on the task: its lease ran out and run " in first_out + first_err
    runs = TaskRun.objects.order_by("pk")
    assert [run.status for run in runs] == [RunStatus.FAILED, RunStatus.SUCCEEDED]
    assert runs[0].error.startswith("Runner stopped")
    assert PKCEState.objects.count() == 0
