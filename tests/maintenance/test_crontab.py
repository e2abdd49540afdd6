"""django-crontab: the entries `crontab add` writes to the real system crontab, and what
they do when cron runs them."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from maintenance import registry
from maintenance.cronjobs import CRON_FUNCTION
from maintenance.models import RunStatus, TaskRun, Trigger
from tests.processes import MANAGE, PYTHON, ROOT, project_env, wait_for

UNRELATED = "17 3 * * * /usr/bin/true # someone else's job, left alone\n"

needs_crontab = pytest.mark.skipif(
    shutil.which("crontab") is None, reason="needs the crontab binary (Debian package cron)"
)


def test_each_entry_runs_its_task_on_its_schedule():
    jobs = {tuple(job[2]): job for job in settings.CRONJOBS}
    for task in registry.all_tasks():
        schedule, function, _ = jobs[(task.name,)]
        assert function == CRON_FUNCTION
        assert schedule == task.schedule


def test_relative_sqlite_path_means_the_project_directory():
    """cron runs jobs from $HOME: `sqlite:///db.sqlite3` (as in .env.example) must still
    open the project's database."""
    result = subprocess.run(
        [
            PYTHON,
            "-c",
            "from django.conf import settings as s; print(s.DATABASES['default']['NAME'])",
        ],
        cwd="/",
        env=project_env(DATABASE_URL="sqlite:///db.sqlite3", PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == str(ROOT / "db.sqlite3")


def declared_schedules() -> list[tuple[str, str]]:
    return [(task.name, task.schedule) for task in registry.all_tasks()]


def job_hash(job: tuple) -> str:
    """The job id django-crontab writes into each line (md5 of the job as sorted JSON)."""
    return hashlib.md5(json.JSONEncoder(sort_keys=True).encode(job).encode()).hexdigest()  # noqa: S324


def crontab_run(task: str, **env: str) -> subprocess.CompletedProcess:
    job = next(job for job in settings.CRONJOBS if job[2] == [task])
    return subprocess.run(
        [PYTHON, MANAGE, "crontab", "run", job_hash(job)],
        cwd="/",
        env=project_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def sessions_table_gone():
    """A real failure for oauth_session_cleanup: its table is renamed away meanwhile."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE mcp_oauth_sessions RENAME TO mcp_oauth_sessions_away")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE mcp_oauth_sessions_away RENAME TO mcp_oauth_sessions")


@pytest.mark.django_db(transaction=True)
def test_cron_job_records_a_cron_run_and_prints_one_line():
    result = crontab_run("pkce_cleanup")
    assert result.returncode == 0, result.stderr
    run = TaskRun.objects.get()
    assert (run.task, run.trigger, run.status) == ("pkce_cleanup", Trigger.CRON, "succeeded")
    assert result.stdout.strip().endswith(
        f"cron pkce_cleanup succeeded run={run.pk}: Deleted 0 expired PKCE states"
    )


@pytest.mark.django_db(transaction=True)
def test_failing_cron_job_exits_1_with_one_line_and_a_failed_run(sessions_table_gone):
    """django-crontab swallows exceptions (even SystemExit) and exits 0; ours does not."""
    result = crontab_run("oauth_session_cleanup")
    assert result.returncode == 1
    run = TaskRun.objects.get()
    assert (run.trigger, run.status) == (Trigger.CRON, RunStatus.FAILED)
    ours = [line for line in result.stderr.splitlines() if " cron oauth_session_cleanup " in line]
    assert len(ours) == 1 and f"failed run={run.pk}: " in ours[0]
    assert "Traceback" not in result.stderr


# --- The real system crontab --------------------------------------------------------


@pytest.fixture
def crontab_restored():
    """Root's crontab as it was before the test, put back afterwards, whatever happens."""
    before = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    try:
        yield
    finally:
        if before.returncode == 0:
            subprocess.run(["crontab", "-"], input=before.stdout, text=True, check=True)
        else:
            subprocess.run(["crontab", "-r"], capture_output=True)


def installed() -> str:
    return subprocess.run(["crontab", "-l"], capture_output=True, text=True).stdout


def manage_crontab(subcommand: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, MANAGE, "crontab", subcommand],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@needs_crontab
def test_crontab_add_show_remove_leave_other_lines_alone(crontab_restored, tmp_path):
    subprocess.run(["crontab", "-"], input=UNRELATED, text=True, check=True)
    comment = f"pluggedin maintenance test {uuid.uuid4().hex[:8]}"
    log = tmp_path / "logs" / "cron.log"
    env = project_env(CRONTAB_COMMENT=comment, CRON_LOG_FILE=str(log))

    manage_crontab("add", env)
    lines = installed().splitlines(keepends=True)
    ours = [line for line in lines if line.rstrip().endswith(f"# {comment}")]
    assert len(ours) == 3
    assert UNRELATED in lines
    assert log.parent.is_dir(), "the log directory exists before cron first appends to it"
    for line, (name, schedule) in zip(ours, declared_schedules(), strict=True):
        job = (schedule, CRON_FUNCTION, [name])
        assert line.startswith(f"{schedule} {PYTHON} {MANAGE} crontab run {job_hash(job)} ")
        assert f">> {log} 2>&1 # {comment}" in line
        assert env["SECRET_KEY"] not in line and "postgres://" not in line

    shown = manage_crontab("show", env).stdout
    for name, _ in declared_schedules():
        assert f"'{CRON_FUNCTION}', ['{name}']" in shown

    manage_crontab("remove", env)
    assert installed() == UNRELATED


# --- End to end: the cron daemon runs the entries ------------------------------------


def process_names() -> set[str]:
    names = set()
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):  # the process ended meanwhile
            names.add(comm.read_text().strip())
    return names


@pytest.fixture
def cron_daemon():
    """The cron daemon: the one already running, or one started for this test."""
    if "cron" in process_names():
        yield
        return
    if os.geteuid() != 0 or shutil.which("cron") is None:
        pytest.skip("needs a running cron daemon, or root and the cron binary to start one")
    daemon = subprocess.Popen(["cron", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=10)


@needs_crontab
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_cron_daemon_runs_the_entries_and_a_failure_shows_as_failed(
    crontab_restored, cron_daemon, sessions_table_gone, tmp_path
):
    """Every-minute entries installed from an env file that points at the test database:
    within about a minute cron records a succeeded pkce_cleanup run and a failed
    oauth_session_cleanup run (its table is gone), and both land in the log file."""
    log = tmp_path / "cron.log"
    env_file = tmp_path / "cron.env"
    env_file.write_text(
        "\n".join(
            [
                f"DATABASE_URL={project_env()['DATABASE_URL']}",
                f"SECRET_KEY={project_env()['SECRET_KEY']}",
                "PKCE_CLEANUP_CRON=* * * * *",
                "OAUTH_SESSION_CLEANUP_CRON=* * * * *",
                "SCHEDULED_EMAILS_CRON=0 0 1 1 *",
                f"CRONTAB_COMMENT=pluggedin maintenance e2e {uuid.uuid4().hex[:8]}",
                f"CRON_LOG_FILE={log}",
                "LOG_LEVEL=INFO",
                "",
            ]
        )
    )
    # Only the env file's path reaches the crontab line; everything else is read from it.
    env = {key: project_env()[key] for key in ["PATH", "HOME", "LANG"]}
    env["PLUGGEDIN_ENV_FILE"] = str(env_file)
    env["CRONTAB_COMMAND_PREFIX"] = f"PLUGGEDIN_ENV_FILE={env_file}"
    manage_crontab("add", env)
    assert installed().count(f"PLUGGEDIN_ENV_FILE={env_file} {PYTHON}") == 3

    def both_recorded() -> bool:
        runs = TaskRun.objects.filter(trigger=Trigger.CRON)
        return {(run.task, run.status) for run in runs} >= {
            ("pkce_cleanup", RunStatus.SUCCEEDED),
            ("oauth_session_cleanup", RunStatus.FAILED),
        }

    assert wait_for(both_recorded, timeout=130, interval=1), Path(log).read_text()
    manage_crontab("remove", env)
    written = wait_for(
        lambda: log.exists() and "oauth_session_cleanup failed" in log.read_text(), 10
    )
    assert written, log.read_text() if log.exists() else "no log file"
    assert "cron pkce_cleanup succeeded" in log.read_text()


@needs_crontab
def test_crontab_warns_about_variables_cron_will_not_see(tmp_path):
    shell_only = manage_crontab("show", project_env()).stderr
    assert "maintenance.W201" in shell_only
    assert "DATABASE_URL, SECRET_KEY set in this shell" in shell_only

    env_file = tmp_path / "project.env"
    env = project_env(PLUGGEDIN_ENV_FILE=str(env_file))
    env_file.write_text(f"DATABASE_URL={env['DATABASE_URL']}\nSECRET_KEY='{env['SECRET_KEY']}'\n")
    assert "maintenance.W201" not in manage_crontab("show", env).stderr


def test_other_commands_never_warn_about_cron():
    result = subprocess.run(
        [PYTHON, MANAGE, "check"], cwd=ROOT, env=project_env(), capture_output=True, text=True
    )
    assert result.returncode == 0 and "W201" not in result.stdout + result.stderr
