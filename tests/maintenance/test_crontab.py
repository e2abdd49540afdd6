"""django-crontab: the entries `crontab add` writes to the real system crontab, and what
they do when cron runs them."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection

from maintenance import registry
from maintenance.models import RunStatus, TaskRun, Trigger
from maintenance.triggers.cronjobs import CRON_FUNCTION
from tests import tools
from tests.processes import MANAGE, PYTHON, ROOT, project_env, wait_for

UNRELATED = "17 3 * * * /usr/bin/true # someone else's job, left alone\n"


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


# --- A real crontab: the throwaway user's, never the machine's -------------------------


def installed(user: str) -> str:
    return subprocess.run(["crontab", "-u", user, "-l"], capture_output=True, text=True).stdout


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


def crontab_env(user: str, **overrides: str) -> dict[str, str]:
    """The project's environment with django-crontab pointed at `user`'s crontab."""
    return project_env(CRONTAB_EXECUTABLE=f"crontab -u {user}", **overrides)


def test_crontab_add_show_remove_leave_other_lines_alone(throwaway_crontab, tmp_path):
    user = throwaway_crontab
    subprocess.run(["crontab", "-u", user, "-"], input=UNRELATED, text=True, check=True)
    comment = f"pluggedin maintenance test {uuid.uuid4().hex[:8]}"
    log = tmp_path / "logs" / "cron.log"
    env = crontab_env(user, CRONTAB_COMMENT=comment, CRON_LOG_FILE=str(log))
    root_before = installed("root")

    manage_crontab("add", env)
    lines = installed(user).splitlines(keepends=True)
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
    assert installed(user) == UNRELATED
    assert installed("root") == root_before, "root's crontab is never touched"


def test_a_percent_sign_reaches_the_crontab_escaped(throwaway_crontab, tmp_path):
    """Cron turns a bare `%` into a newline and feeds the rest to stdin: `crontab add`
    writes each one as `\\%`, which cron hands the shell as `%`."""
    log = tmp_path / "logs" / "cron-%d.log"
    env = crontab_env(
        throwaway_crontab, CRON_LOG_FILE=str(log), CRONTAB_COMMAND_PREFIX="RUN_TAG=100%"
    )

    manage_crontab("add", env)

    ours = [line for line in installed(throwaway_crontab).splitlines() if "crontab run" in line]
    assert len(ours) == len(declared_schedules())
    for line in ours:
        assert line.split(" 2>&1 ")[0].endswith(f">> {str(log).replace('%', chr(92) + '%')}")
        assert f"RUN_TAG=100\\% {PYTHON}" in line
        assert line.count("%") == line.count("\\%") == 2


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CRON_SECRET", "cron-secret-for-the-prefix-test-0123456789"),
        ("CRON_SECRET", "abc123"),  # short (W002 warns), still a secret
        ("METRICS_TOKEN", "metrics-token-for-the-prefix-test-012345"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ],
)
def test_a_prefix_holding_a_secret_is_refused_by_name_and_installs_nothing(
    throwaway_crontab, variable, value
):
    env = crontab_env(
        throwaway_crontab, **{variable: value, "CRONTAB_COMMAND_PREFIX": f"{variable}={value}"}
    )

    added = subprocess.run(
        [PYTHON, MANAGE, "crontab", "add"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert added.returncode != 0
    printed = added.stdout + added.stderr
    assert f"maintenance.E201) CRONTAB_COMMAND_PREFIX holds the value of {variable}" in printed
    assert value not in printed
    assert installed(throwaway_crontab) == ""


def test_the_secrets_a_prefix_must_not_hold_include_urls_and_rotated_keys(settings, monkeypatch):
    """The database and email passwords, the webhook password alone, a rotated-out
    SECRET_KEY and the Sentry DSN each make `manage.py check` refuse, by name."""
    monkeypatch.setitem(settings.DATABASES["default"], "PASSWORD", "db-password-0123")
    settings.EMAIL_HOST_PASSWORD = "smtp-password-0123"
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hooks:webhook-password-0123"}
    settings.SECRET_KEY_FALLBACKS = ["old-secret-key-0123456789"]
    settings.SENTRY_DSN = "https://public0123@o1.ingest.sentry.io/42"
    settings.CRONTAB_COMMAND_PREFIX = (
        "A=db-password-0123 B=smtp-password-0123 C=webhook-password-0123 "
        "D=old-secret-key-0123456789 E=https://public0123@o1.ingest.sentry.io/42"
    )

    with pytest.raises(SystemCheckError) as refused:
        call_command("check")

    message = str(refused.value)
    assert (
        "CRONTAB_COMMAND_PREFIX holds the value of ANYMAIL_WEBHOOK_SECRET, DATABASE_URL, "
        "EMAIL_URL, SECRET_KEY_FALLBACKS, SENTRY_DSN:"
    ) in message
    assert "0123" not in message

    settings.CRONTAB_COMMAND_PREFIX = "PLUGGEDIN_ENV_FILE=/etc/pluggedin.env"
    call_command("check")


# --- End to end: a cron daemon runs the entries ---------------------------------------

# In its own mount namespace the daemon sees an empty /etc/crontab and /etc/cron.d and a
# spool of its own, so it runs the throwaway user's table and nothing of the machine's;
# `crontab add` runs in there too, so the machine's spool is never written. The user's home
# and, when the interpreter lives under /root (pyenv), that folder are made reachable for
# the user in there only.
PRIVATE_CRON = """
set -e
mount --bind "$WORK/cron.d" /etc/cron.d
mount --bind "$WORK/crontab" /etc/crontab
mount --bind "$WORK/spool" /var/spool/cron/crontabs
mount --bind "$WORK/run" /run
if [ -n "$UNDER_ROOT" ]; then
    mount --bind "/root/$UNDER_ROOT" "$WORK/hold"
    mount -t tmpfs -o mode=0755 tmpfs /root
    mkdir "/root/$UNDER_ROOT"
    mount --bind "$WORK/hold" "/root/$UNDER_ROOT"
fi
mount -t tmpfs -o mode=0755 tmpfs "$(dirname "$USER_HOME")"
mkdir -p "$USER_HOME" && chown "$CRON_USER" "$USER_HOME"
"$PYTHON" "$MANAGE" crontab add > "$WORK/add.log" 2>&1
exec cron -f
"""


class PrivateCron:
    """A work folder the throwaway user can reach, and the isolated daemon once started."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.work = Path(tempfile.mkdtemp(prefix="pluggedin-cron-"))
        self.work.chmod(0o755)
        for folder in ["cron.d", "spool", "run", "hold"]:
            (self.work / folder).mkdir()
        (self.work / "crontab").touch()
        self.daemon: subprocess.Popen | None = None

    def user_file(self, name: str, text: str = "") -> Path:
        """A file in the work folder that only the throwaway user (and root) can read."""
        path = self.work / name
        path.write_text(text)
        path.chmod(0o600)
        shutil.chown(path, self.user)
        return path

    @property
    def table(self) -> str:
        path = self.work / "spool" / self.user
        return path.read_text() if path.exists() else ""

    def start(self, env: dict[str, str]) -> None:
        """`crontab add` with `env` for the user, then the daemon, both in the namespace."""
        real = Path(PYTHON).resolve().parts
        under_root = real[2] if real[:2] == ("/", "root") and len(real) > 2 else ""
        env = {
            **env,
            "WORK": str(self.work),
            "UNDER_ROOT": under_root,
            "CRON_USER": self.user,
            "USER_HOME": pwd.getpwnam(self.user).pw_dir,
            "PYTHON": PYTHON,
            "MANAGE": MANAGE,
            "CRONTAB_EXECUTABLE": f"crontab -u {self.user}",
        }
        self.daemon = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", PRIVATE_CRON],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        added = wait_for(lambda: self.table or self.daemon.poll() is not None, 60)
        add_log = self.work / "add.log"
        assert added and self.table, add_log.read_text() if add_log.exists() else "no output"

    def stop(self) -> None:
        """Stop the daemon, then the jobs it started (their own sessions), by process id."""
        if self.daemon is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.daemon.pid, signal.SIGTERM)
            self.daemon.wait(timeout=10)
        uid = pwd.getpwnam(self.user).pw_uid
        if not wait_for(lambda: not processes_of(uid), timeout=30):
            for pid in processes_of(uid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.work, ignore_errors=True)


def processes_of(uid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):  # the process ended meanwhile
            if f"\nUid:\t{uid}\t" in status.read_text():
                found.append(int(status.parent.name))
    return found


@pytest.fixture
def private_cron(throwaway_crontab):
    tools.requires_tool("cron", "unshare")
    cron = PrivateCron(throwaway_crontab)
    try:
        yield cron
    finally:
        cron.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_cron_daemon_runs_the_entries_and_a_failure_shows_as_failed(
    private_cron, sessions_table_gone
):
    """Every-minute entries installed from an env file that points at the test database:
    within about a minute cron records a succeeded pkce_cleanup run and a failed
    oauth_session_cleanup run (its table is gone), and both land in the log file, whose
    name holds a `%` (cron would end the command there if the line left it bare)."""
    root_before = installed("root")
    log = private_cron.user_file("cron-%d.log")
    env_file = private_cron.user_file(
        "cron.env",
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
        ),
    )
    # Only the env file's path reaches the crontab line; everything else is read from it.
    env = {key: project_env()[key] for key in ["PATH", "HOME", "LANG"]}
    env["PLUGGEDIN_ENV_FILE"] = str(env_file)
    env["CRONTAB_COMMAND_PREFIX"] = f"PLUGGEDIN_ENV_FILE={env_file}"
    private_cron.start(env)
    assert private_cron.table.count(f"PLUGGEDIN_ENV_FILE={env_file} {PYTHON}") == 3

    def both_recorded() -> bool:
        runs = TaskRun.objects.filter(trigger=Trigger.CRON)
        return {(run.task, run.status) for run in runs} >= {
            ("pkce_cleanup", RunStatus.SUCCEEDED),
            ("oauth_session_cleanup", RunStatus.FAILED),
        }

    assert wait_for(both_recorded, timeout=130, interval=1), log.read_text()
    # Each command writes its line once it returns, which may be after its run's row
    # (a success prunes the run log first): wait for both lines, not one.
    lines = ["oauth_session_cleanup failed", "cron pkce_cleanup succeeded"]
    written = wait_for(lambda: all(line in log.read_text() for line in lines), 10)
    assert written, log.read_text()
    assert "cron pkce_cleanup succeeded" in log.read_text()
    assert installed(private_cron.user) == "", "the machine's spool never got the table"
    assert installed("root") == root_before, "root's crontab is never touched"


def test_crontab_warns_about_variables_cron_will_not_see(throwaway_crontab, tmp_path):
    shell_only = manage_crontab("show", crontab_env(throwaway_crontab)).stderr
    assert "maintenance.W201" in shell_only
    assert "DATABASE_URL, SECRET_KEY set in this shell" in shell_only

    env_file = tmp_path / "project.env"
    env = crontab_env(throwaway_crontab, PLUGGEDIN_ENV_FILE=str(env_file))
    env_file.write_text(f"DATABASE_URL={env['DATABASE_URL']}\nSECRET_KEY='{env['SECRET_KEY']}'\n")
    assert "maintenance.W201" not in manage_crontab("show", env).stderr


def test_other_commands_never_warn_about_cron():
    result = subprocess.run(
        [PYTHON, MANAGE, "check"], cwd=ROOT, env=project_env(), capture_output=True, text=True
    )
    assert result.returncode == 0 and "W201" not in result.stdout + result.stderr
