"""Every shell line in README.md works as written.

Each ```sh block is run as one script (`set -e`, lines in order, as an operator would
paste it) in a shell from the project root, against a live test server (`APP_URL`) with
`CRON_SECRET` exported and the test database, and must exit 0. `crontab` there is the real
binary aimed at a throwaway user. Blocks right after an `<!-- illustrative ... -->` comment
are for other platforms or need a running cron daemon, and are not run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands
from django.urls import Resolver404, resolve

from maintenance import registry
from maintenance.runner import run_task
from tests.processes import ROOT, subprocess_env

README = ROOT / "README.md"
BLOCK = re.compile(
    r"(?P<marker><!--\s*illustrative[^>]*-->\s*\n)?^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```",
    re.S | re.M,
)
SHELL_LANGUAGES = {"sh", "bash", "shell"}


def shell_blocks(text: str) -> list[list[str]]:
    blocks = []
    for block in BLOCK.finditer(text):
        if block["lang"] not in SHELL_LANGUAGES or block["marker"]:
            continue
        body = block["body"].replace("\\\n", " ")
        lines = [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.startswith("#")]
        if lines:
            blocks.append(lines)
    return blocks


BLOCKS = shell_blocks(README.read_text())
LINES = [line for block in BLOCKS for line in block]


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


@pytest.mark.parametrize("block", BLOCKS, ids=[block[0][:70] for block in BLOCKS])
def test_readme_block_works_as_written(block, request, live_server, cron_secret, tmp_path):
    reasons = [reason for reason in map(missing_here, block) if reason]
    if reasons:
        pytest.skip(reasons[0])
    env = {"APP_URL": live_server.url, "CRON_SECRET": cron_secret}
    env["DJANGO_SETTINGS_MODULE"] = "tests.readme_settings"
    path = [str(Path(sys.executable).parent)]
    if any("crontab" in line for line in block):
        user = request.getfixturevalue("throwaway_crontab")
        env["PLUGGEDIN_TEST_CRONTAB_EXECUTABLE"] = f"{shutil.which('crontab')} -u {user}"
        path.insert(0, str(crontab_shim(tmp_path, user)))
    for name in registry.names():  # a healthy deployment, so the status lines answer 200
        run_task(name, "command")
    full_env = subprocess_env(**env)
    full_env["PATH"] = os.pathsep.join([*path, full_env.get("PATH", "")])
    script = "\n".join(["set -e", *block])

    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, f"{script}\nstdout: {result.stdout}\nstderr: {result.stderr}"


def crontab_shim(folder: Path, user: str) -> Path:
    """A `crontab` first on PATH that is the real binary, for the throwaway user."""
    shim = folder / "bin" / "crontab"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {shutil.which("crontab")} -u {user} "$@"\n')
    shim.chmod(0o755)
    return shim.parent
