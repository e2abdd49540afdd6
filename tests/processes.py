"""Run the project in real subprocesses (`manage.py` commands, runserver, gunicorn, cron
jobs) against the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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
