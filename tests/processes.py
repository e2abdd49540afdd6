"""Helpers for tests that start the project in real child processes (runserver, gunicorn,
cron jobs, commands): the environment they get, and the test database they must use."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.db import connection

PROJECT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MANAGE = str(PROJECT / "manage.py")
T = TypeVar("T")


def database_url() -> str:
    """The URL of the test database this test runs against, for a child process."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def project_env(**overrides: str) -> dict[str, str]:
    """A bare environment (as cron or a service manager gives) with the project settings,
    the test database and no `.env` file, plus `overrides`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "pluggedin.settings",
        "PLUGGEDIN_ENV_FILE": "",
        "SECRET_KEY": "test-secret-key-for-child-processes-0123456789",
        "DATABASE_URL": database_url(),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides)
    return env


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
