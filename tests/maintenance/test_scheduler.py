"""The in-process scheduler: the loop in a thread, and where it starts (and does not)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from datetime import datetime, timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from maintenance.models import RunStatus, TaskRun, Trigger
from maintenance.registry import Task
from maintenance.runs import clock
from maintenance.runs.runner import run_task
from maintenance.schedules import cron
from maintenance.triggers import scheduler as scheduler_module
from maintenance.triggers.scheduler import RETRY_AFTER_ERROR, Scheduler
from tests import factories
from tests.processes import (
    MANAGE,
    PYTHON,
    ROOT,
    first_query,
    free_port,
    project_env,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

STARTED = "maintenance.scheduler.started"


def fake_task(
    name: str, func, cron_expression: str = "* * * * *", run_at_startup: bool = True
) -> Task:
    return factories.fake_task(name, func, cron=cron_expression, run_at_startup=run_at_startup)


# An hourly tick of today, a few hours back (the run log's retention prunes runs of long
# ago); the scheduler and the runner read the injected clock, so no test waits for a tick.
HOURLY = cron.parse("0 * * * *")
TICK = HOURLY.latest_tick(timezone.now()) - timedelta(hours=4)


def test_the_thread_runs_the_startup_pass_and_stops_cleanly_when_asked(isolated_registry, at):
    """On the injected clock, 3 s past a tick: the thread's next tick is minutes away, so
    the startup run is the only one even when a real */5 boundary falls inside the test."""
    calls = []
    isolated_registry.register(fake_task("count", lambda: calls.append(1) or {}))
    scheduler = Scheduler()
    scheduler.start_thread()
    try:
        wait_for(lambda: calls, timeout=30)
    finally:
        scheduler.stop()

    assert not scheduler.thread.is_alive()
    assert TaskRun.objects.get().status == RunStatus.SUCCEEDED


def test_failing_task_is_recorded_failed_retried_in_its_tick_and_the_next_one_keeps_running(
    isolated_registry, at
):
    calls = []

    def boom() -> dict:
        raise RuntimeError("disk on fire")

    def count() -> dict:
        calls.append(clock.now())
        return {"calls": len(calls)}

    isolated_registry.register(fake_task("boom", boom, "0 * * * *"))
    isolated_registry.register(fake_task("count", count, "0 * * * *"))
    scheduler = one_pass()
    at(TICK + timedelta(seconds=30))
    retry = run_task("boom", Trigger.CRON)  # a later trigger of the same tick retries it
    at(TICK + timedelta(hours=1, seconds=1))
    scheduler.run_due()  # the next tick: boom is tried again, count keeps running

    failed = TaskRun.objects.filter(task="boom").order_by("pk")
    assert retry.failed and retry.run_id is not None
    assert [run.tick for run in failed] == [TICK, TICK, TICK + timedelta(hours=1)]
    assert {run.status for run in failed} == {RunStatus.FAILED}
    assert all(run.error == "RuntimeError: disk on fire" for run in failed)
    succeeded = TaskRun.objects.filter(task="count", status=RunStatus.SUCCEEDED)
    assert succeeded.count() == len(calls) == 2


def success_at(trigger: str, tick: datetime) -> TaskRun:
    """A success of the fake task `count` recorded by another trigger serving `tick`."""
    return TaskRun.objects.create(
        task="count", trigger=trigger, status=RunStatus.SUCCEEDED, started_at=tick, tick=tick
    )


def one_pass() -> Scheduler:
    scheduler = Scheduler()
    scheduler.plan_startup()
    scheduler.run_due()
    return scheduler


def test_skips_a_tick_any_trigger_already_served(isolated_registry, at):
    calls = []
    isolated_registry.register(fake_task("count", lambda: calls.append(1) or {}, "0 * * * *"))
    cron_run = success_at(Trigger.CRON, TICK)
    at(TICK + timedelta(minutes=10))
    scheduler = one_pass()

    assert calls == []
    skip = TaskRun.objects.exclude(pk=cron_run.pk).get()
    assert (skip.trigger, skip.status) == (Trigger.SCHEDULER, RunStatus.SKIPPED)
    assert f"already served by run {cron_run.pk} (cron)" in skip.result["reason"]
    assert scheduler.due["count"] == TICK + timedelta(hours=1)


def test_runs_a_task_whose_current_tick_is_not_served_yet(isolated_registry, at):
    calls = []
    isolated_registry.register(fake_task("count", lambda: calls.append(1) or {}, "0 * * * *"))
    success_at(Trigger.HTTP, TICK - timedelta(hours=1))
    one_pass()

    assert calls == [1]
    latest = TaskRun.objects.last_run("count")
    assert (latest.trigger, latest.status, latest.tick) == (
        Trigger.SCHEDULER,
        RunStatus.SUCCEEDED,
        TICK,
    )


def test_task_without_startup_run_waits_for_its_next_tick(isolated_registry, at):
    calls = []
    task = fake_task("count", lambda: calls.append(1) or {}, "0 * * * *", run_at_startup=False)
    isolated_registry.register(task)
    scheduler = one_pass()

    assert calls == []
    assert scheduler.due["count"] == TICK + timedelta(hours=1)
    assert 3590 < scheduler.seconds_until_next_due() <= 3600


def test_after_downtime_the_next_tick_is_served_once_and_the_gap_recorded_missed(
    isolated_registry, at
):
    calls = []
    task = fake_task("count", lambda: calls.append(1) or {}, "0 * * * *", run_at_startup=False)
    isolated_registry.register(task)
    success_at(Trigger.CRON, TICK - timedelta(hours=3))  # then the host was down
    scheduler = one_pass()
    at(TICK + timedelta(hours=1, seconds=2))
    scheduler.run_due()
    scheduler.run_due()

    assert calls == [1], "one catch-up run, no burst"
    missed = TaskRun.objects.filter(status=RunStatus.MISSED).order_by("tick")
    expected = [TICK - timedelta(hours=h) for h in (2, 1, 0)]
    assert [run.tick for run in missed] == expected
    assert TaskRun.objects.last_run("count").result["missedTicks"] == 3


def test_a_trigger_that_lost_the_race_for_the_tick_does_not_redo_the_work(isolated_registry, at):
    """Two triggers of one tick, connected, then released together: the task runs once,
    and the loser, answering while the winner's run is still going, records a skip that
    names the run serving the tick."""
    answers: dict[str, object] = {}
    calls = []

    def work(**options):  # the winner's run lasts until the loser has answered
        calls.append(1)
        wait_for(lambda: len(answers) == 1, timeout=10, interval=0.01)
        return {}

    isolated_registry.register(fake_task("count", work))
    start = threading.Barrier(2)

    def trigger(name: str) -> None:
        try:
            first_query()
            start.wait(timeout=30)
            answers[name] = run_task("count", name)
        finally:
            connection.close()

    racers = [
        threading.Thread(target=trigger, args=(t,)) for t in (Trigger.CRON, Trigger.SCHEDULER)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)

    said = {o.trigger: (o.status, o.message or o.error) for o in answers.values()}
    assert sorted(o.status for o in answers.values()) == ["skipped", "succeeded"], said
    assert calls == [1]
    winner, loser = sorted(answers.values(), key=lambda o: o.skipped)
    assert not loser.failed and loser.tick == TICK
    assert f"being served by run {winner.run_id} ({winner.trigger})" in loser.message
    assert TaskRun.objects.get(status=RunStatus.SUCCEEDED).tick == TICK
    assert TaskRun.objects.get(status=RunStatus.SKIPPED).tick == TICK


def refuse_run_log(execute, sql, params, many, context):
    """The run log is unreachable (the database went away between two passes)."""
    if "maintenance_task_runs" in sql:
        raise OperationalError("server closed the connection unexpectedly")
    return execute(sql, params, many, context)


def test_the_scheduler_survives_a_run_log_error_and_retries_soon(isolated_registry, caplog, at):
    calls = []
    isolated_registry.register(fake_task("count", lambda: calls.append(1) or {}, "0 * * * *"))
    scheduler = Scheduler()
    scheduler.plan_startup()
    caplog.set_level(logging.INFO, logger="maintenance.scheduler")

    with connection.execute_wrapper(refuse_run_log):
        scheduler.run_due()

    assert calls == []
    retry_at = scheduler.due["count"]
    assert retry_at == TICK + timedelta(seconds=3) + RETRY_AFTER_ERROR, "retried within a minute"
    errors = [r for r in caplog.records if getattr(r, "event", "") == "maintenance.scheduler.error"]
    assert errors and errors[0].levelno == logging.ERROR

    at(retry_at)  # the retry, once the database is back, still serves the tick
    scheduler.run_due()
    assert calls == [1]
    assert TaskRun.objects.get(status=RunStatus.SUCCEEDED).tick == TICK


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-c", code],
        cwd=ROOT,
        env=project_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


THREADS = "import threading; print(sorted(t.name for t in threading.enumerate()))"


@pytest.mark.parametrize("module", ["pluggedin.wsgi", "pluggedin.asgi"])
def test_serving_process_starts_one_scheduler_thread(module):
    result = run_python(f"import {module}; {THREADS}", IN_PROCESS_SCHEDULER="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("maintenance-scheduler") == 1
    assert result.stderr.count(STARTED) == 1


def test_scheduler_stays_off_with_in_process_scheduler_false():
    result = run_python(f"import pluggedin.wsgi; {THREADS}", IN_PROCESS_SCHEDULER="false")
    assert result.returncode == 0, result.stderr
    assert "maintenance-scheduler" not in result.stdout
    assert "maintenance.scheduler.disabled" in result.stderr
    assert 'reason="IN_PROCESS_SCHEDULER is false"' in result.stderr
    assert not TaskRun.objects.exists()


@pytest.mark.parametrize("command", [["migrate", "--noinput"], ["shell", "-c", THREADS], ["check"]])
def test_management_commands_never_start_the_scheduler(command):
    result = subprocess.run(
        [PYTHON, MANAGE, *command],
        cwd=ROOT,
        env=project_env(IN_PROCESS_SCHEDULER="true"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert STARTED not in result.stderr + result.stdout
    assert "maintenance-scheduler" not in result.stdout
    assert not TaskRun.objects.filter(trigger=Trigger.SCHEDULER).exists()


def start(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=project_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop(process: subprocess.Popen, signum: int = signal.SIGTERM) -> str:
    """Signal the process group we started and return everything it printed."""
    os.killpg(process.pid, signum)
    output, _ = process.communicate(timeout=30)
    return output


def startup_cleanups_recorded() -> bool:
    done = TaskRun.objects.filter(trigger=Trigger.SCHEDULER, status=RunStatus.SUCCEEDED)
    return set(done.values_list("task", flat=True)) >= {"pkce_cleanup", "oauth_session_cleanup"}


@pytest.mark.slow
def test_runserver_runs_the_startup_cleanups_once_in_its_serving_process():
    """What `make run` shows: one scheduler (in the serving child, not the autoreloader
    parent), a log line, and recorded startup runs of both cleanups."""
    server = start([PYTHON, MANAGE, "runserver", f"127.0.0.1:{free_port()}"])
    try:
        assert wait_for(startup_cleanups_recorded, timeout=60)
    finally:
        output = stop(server)

    assert output.count(STARTED) == 1, output
    assert (
        'tasks="pkce_cleanup (*/10 * * * *), scheduled_emails (0 * * * *),'
        ' oauth_session_cleanup (0 * * * *)"'
    ) in output
    pids = set(TaskRun.objects.values_list("pid", flat=True))
    assert len(pids) == 1 and server.pid not in pids, "the serving child ran them, once"
    assert "maintenance.scheduler.ran task=pkce_cleanup status=succeeded" in output


@pytest.mark.slow
def test_run_scheduler_runs_in_the_foreground_and_stops_on_sigterm():
    worker = start([PYTHON, MANAGE, "run_scheduler"], IN_PROCESS_SCHEDULER="false")
    try:
        assert wait_for(startup_cleanups_recorded, timeout=60)
    finally:
        output = stop(worker)

    assert worker.returncode == 0, output
    assert output.count(STARTED) == 1
    assert "maintenance.scheduler.stopped" in output
    assert not TaskRun.objects.filter(status=RunStatus.RUNNING).exists()


def each_cleanup_tried_by_two_processes() -> bool:
    done = TaskRun.objects.filter(trigger=Trigger.SCHEDULER).exclude(status=RunStatus.MISSED)
    pids = {task: set() for task in ["pkce_cleanup", "oauth_session_cleanup"]}
    for task, pid in done.values_list("task", "pid"):
        pids.setdefault(task, set()).add(pid)
    return all(len(pids[task]) >= 2 for task in ["pkce_cleanup", "oauth_session_cleanup"])


@pytest.mark.slow
@pytest.mark.parametrize("preload", [False, True], ids=["fork", "preload"])
@pytest.mark.postgres
def test_two_gunicorn_workers_serve_each_tick_once_in_total(preload):
    """Two workers, each with its own scheduler, one PostgreSQL database: each worker's
    startup pass tries the current tick of every task, and the tick is served once in all,
    never once per process. The test waits for the attempts, not for a fixed time."""
    args = [PYTHON, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{free_port()}"]
    # gunicorn 27 listens on a control socket at one fixed path under $HOME by default: two
    # servers (the previous test's still shutting down) would contend for it.
    args.append("--no-control-socket")
    # A worker still booting when the master passes on SIGTERM runs the master's handlers,
    # which only queue the signal, and lives until the graceful timeout (30 s by default,
    # this test's whole wait for the stop). A worker that heard it exits within the
    # scheduler's 10 s shutdown wait; 15 s then ends a deaf one in time.
    args += ["--graceful-timeout", "15"]
    server = start(
        [*args, *(["--preload"] if preload else []), "pluggedin.wsgi:application"],
        IN_PROCESS_SCHEDULER="true",
        # A worker that dies holding a task (a connection shared across the --preload
        # fork) must not keep it for the default minute-long lease.
        MAINTENANCE_LOCK_LEASE_SECONDS="6",
    )
    try:
        tried = wait_for(each_cleanup_tried_by_two_processes, timeout=120, interval=0.1)
    finally:
        output = stop(server)
    assert tried, output[-4000:]

    started_pids = {
        line.split("pid=")[1].split()[0] for line in output.splitlines() if STARTED in line
    }
    assert len(started_pids) >= 2, f"each worker runs a scheduler:\n{output}"
    for task in ["pkce_cleanup", "oauth_session_cleanup"]:
        runs = TaskRun.objects.filter(task=task, status=RunStatus.SUCCEEDED)
        ticks = list(runs.values_list("tick", flat=True))
        assert ticks and len(ticks) == len(set(ticks)), f"{task} served a tick twice: {ticks}"
        assert {run.trigger for run in runs} == {Trigger.SCHEDULER}
    assert not TaskRun.objects.filter(status=RunStatus.FAILED).exists()


def test_the_test_settings_keep_it_off():
    """Production code never asks whether it runs under tests: the test settings switch the
    scheduler off like any deployment would."""
    from maintenance.triggers.scheduler import disabled_reason, start_in_process

    assert disabled_reason() == "IN_PROCESS_SCHEDULER is false"
    assert start_in_process() is None


def fork_while_a_step_holds(lock: threading.Lock, step_seconds: float) -> tuple[float, bool]:
    """Fork while the running scheduler's step holds `lock` for `step_seconds`; return how
    long the fork took and whether the child could take `lock`, as a worker forked by a
    gunicorn --preload master needs the locks (imports, drivers) the master's step held."""
    started = threading.Event()

    def step() -> None:
        with scheduler_module._running.busy, lock:
            started.set()
            time.sleep(step_seconds)

    helper = threading.Thread(target=step)
    helper.start()
    started.wait()
    before = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: no scheduler, no pytest; only the answer
        os._exit(0 if lock.acquire(timeout=0.5) else 1)
    took = time.monotonic() - before
    helper.join()
    _, status = os.waitpid(pid, 0)
    return took, os.waitstatus_to_exitcode(status) == 0


@pytest.fixture
def running_scheduler(monkeypatch):
    """A scheduler registered as this process's, without its thread."""
    monkeypatch.setattr(scheduler_module, "_running", Scheduler(tasks=[]))


def test_a_fork_waits_for_the_schedulers_step_so_the_child_inherits_no_held_lock(
    running_scheduler,
):
    took, child_took_the_lock = fork_while_a_step_holds(threading.Lock(), step_seconds=0.3)

    assert child_took_the_lock
    assert took >= 0.2


def test_a_fork_waits_for_a_long_step_no_longer_than_its_bound(running_scheduler, monkeypatch):
    monkeypatch.setattr(scheduler_module, "FORK_WAIT_SECONDS", 0.2)

    took, child_took_the_lock = fork_while_a_step_holds(threading.Lock(), step_seconds=3)

    assert took < 2
    assert not child_took_the_lock  # the hazard the bound accepts for a step this long
