"""Every shell line in README.md works as written.

Each line of each ```sh block is run in a shell from the project root, against a live test
server (`APP_URL`) with `CRON_SECRET` exported and the test database, and must exit 0.
Blocks right after an `<!-- illustrative ... -->` comment are for other platforms and are
not run. A line for a command or endpoint this checkout does not have yet is skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands
from django.urls import Resolver404, resolve

from maintenance import registry
from maintenance.runner import run_task

from .processes import ROOT, subprocess_env

README = ROOT / "README.md"
BLOCK = re.compile(
    r"(?P<marker><!--\s*illustrative[^>]*-->\s*\n)?^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```",
    re.S | re.M,
)
SHELL_LANGUAGES = {"sh", "bash", "shell"}


def shell_lines(text: str) -> list[str]:
    lines = []
    for block in BLOCK.finditer(text):
        if block["lang"] not in SHELL_LANGUAGES or block["marker"]:
            continue
        body = block["body"].replace("\\\n", " ")
        lines += [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.startswith("#")]
    return lines


LINES = shell_lines(README.read_text())


def missing_here(line: str) -> str | None:
    """Why this checkout cannot run `line` yet (another branch adds it), or None."""
    command = re.search(r"manage\.py\s+(\w+)", line)
    if command and command[1] not in get_commands():
        return f"no `{command[1]}` command in this checkout"
    url = re.search(r"\$APP_URL(/[^\"'\s]*)", line)
    if url:
        try:
            resolve(url[1])
        except Resolver404:
            return f"no {url[1]} endpoint in this checkout"
    return None


def test_the_readme_has_runnable_lines_and_marks_the_rest():
    assert any("maintenance_status" in line for line in LINES)
    assert any(line.startswith("curl ") for line in LINES)
    assert not any("systemctl" in line or "make run" in line for line in LINES)


def test_every_variable_in_env_example_is_in_the_readme_table():
    names = re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    table = README.read_text()
    assert names
    assert [name for name in names if f"| `{name}` |" not in table] == []


@pytest.mark.parametrize("line", LINES, ids=[line[:70] for line in LINES])
def test_readme_line_works_as_written(line, request, live_server, cron_secret):
    reason = missing_here(line)
    if reason:
        pytest.skip(reason)
    env = {"APP_URL": live_server.url, "CRON_SECRET": cron_secret}
    env["DJANGO_SETTINGS_MODULE"] = "tests.readme_settings"
    if "crontab" in line:
        user = request.getfixturevalue("throwaway_crontab")
        env["PLUGGEDIN_TEST_CRONTAB_EXECUTABLE"] = f"crontab -u {user}"
    for name in registry.names():  # a healthy deployment, so the status lines answer 200
        run_task(name, "command")
    full_env = subprocess_env(**env)
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env.get('PATH', '')}"

    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", line],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, f"{line}\nstdout: {result.stdout}\nstderr: {result.stderr}"
