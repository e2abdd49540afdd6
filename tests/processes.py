"""Run the project in real subprocesses (`manage.py` commands, runserver, gunicorn, cron
jobs) against the test database."""

from __future__ import annotations

import fcntl
import os
import runpy
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MANAGE = str(ROOT / "manage.py")
T = TypeVar("T")


def test_database_url() -> str:
    """A DATABASE_URL naming the database this test session uses."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    port = db.get("PORT") or 5432
    user = db.get("USER") or "postgres"
    return f"postgres://{user}@{db.get('HOST') or '127.0.0.1'}:{port}/{db['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "PLUGGEDIN_ENV_FILE": "",
        "SECRET_KEY": "test-secret-key-not-for-production-0123456789",
        "IN_PROCESS_SCHEDULER": "false",
        "DJANGO_SETTINGS_MODULE": "pluggedin.settings",
    }
    env.update(extra)
    return env


def project_env(**overrides: str) -> dict[str, str]:
    """A bare environment, as cron or a service manager gives, with the project settings,
    the test database and no `.env` file, plus `overrides`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "pluggedin.settings",
        "PLUGGEDIN_ENV_FILE": "",
        "SECRET_KEY": "test-secret-key-for-child-processes-0123456789",
        "DATABASE_URL": test_database_url(),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides)
    return env


def run_bare_manage(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    """`manage.py args` in a bare environment (no `.env`), as cron or a service manager
    runs it: `project_env(**env)`."""
    return subprocess.run(
        [PYTHON, MANAGE, *args],
        cwd=ROOT,
        env=project_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def manage(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=subprocess_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_manage(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    process = manage(*args, **env)
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], T], timeout: float, interval: float = 0.25) -> T:
    """Poll `condition` until it returns something truthy; return that, or the last falsy
    value after `timeout` seconds (the caller's assert then shows what was seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- Races: every party ready, then one release instant ---------------------------------


class StartLine:
    """Parties that get ready (Django set up, connected, one query done) and then wait for
    one release, so their contended step really races.

    The release is a file lock: the test holds it exclusively while the parties queue for
    it shared, and letting it go wakes them all at once. A party is a `manage.py` command
    in its own process (`manage`) or a thread of the test's process (`wait`, after its
    first query)."""

    def __init__(self, folder: Path) -> None:
        self.gate = folder / "start"
        self.ready = folder / "ready"
        self.ready.mkdir()
        self._held = self.gate.open("w")
        fcntl.flock(self._held, fcntl.LOCK_EX)
        self.parties = 0
        self.processes: list[subprocess.Popen] = []

    def manage(self, *args: str, **env: str) -> subprocess.Popen:
        """`manage.py ARGS` that starts, connects, then runs when released."""
        self.parties += 1
        process = subprocess.Popen(
            [PYTHON, "-m", "tests.processes", str(self.gate), str(self.ready), *args],
            cwd=ROOT,
            env=subprocess_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)
        return process

    def thread_party(self) -> None:
        """Count one more party: a thread of this process that will call `wait`."""
        self.parties += 1

    def wait(self) -> None:
        """In a party thread, after its first query: say ready, return when released."""
        wait_at_gate(self.gate, self.ready)

    def release(self, timeout: float = 120) -> None:
        """Let every party go at once, when all are ready. A party process that ended
        before, or parties not ready in time, fail the test; the processes are then
        killed, so none runs late."""
        deadline = time.monotonic() + timeout
        while len(list(self.ready.iterdir())) < self.parties:
            exited = [p for p in self.processes if p.poll() is not None]
            problem = ""
            if exited:
                problem = f"a party ended before the release: {exited[0].stderr.read()}"
            elif time.monotonic() > deadline:
                problem = f"parties not ready within {timeout} s"
            if problem:
                for process in self.processes:
                    process.kill()
                    process.wait()
                raise AssertionError(problem)
            time.sleep(0.05)
        fcntl.flock(self._held, fcntl.LOCK_UN)
        self._held.close()


def first_query() -> None:
    """Connect this thread and run one query, so a racer's first contended statement does
    not also pay for the connection (through a pooler, for its server connection)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def wait_at_gate(gate: Path, ready: Path) -> None:
    with gate.open() as shared:
        (ready / f"{os.getpid()}-{threading.get_ident()}").touch()
        fcntl.flock(shared, fcntl.LOCK_SH)


def _released_command(gate: str, ready: str, *args: str) -> None:
    """A party process: set up Django, connect, wait for the release, run `manage.py`."""
    import django

    django.setup()
    first_query()
    wait_at_gate(Path(gate), Path(ready))
    sys.argv = [MANAGE, *args]
    runpy.run_path(MANAGE, run_name="__main__")


if __name__ == "__main__":
    _released_command(*sys.argv[1:])
