"""Every shell line in README.md, docs/*.md and bench/README.md works as written.

Each ```sh block is run as one script (`set -e`, lines in order, as an operator would
paste it) in a shell from the project root, against a live test server (`APP_URL`) with
`CRON_SECRET` exported and the test database, and must exit 0. `crontab` there is the real
binary aimed at a throwaway user. Blocks right after an `<!-- illustrative ... -->` comment
are for other platforms or need a running cron daemon, and are not run. A block that calls
a Debian tool (`promtool`, `crontab`, ...) needs it: skipped without it, failed in CI.
A line whose `manage.py` command or `$APP_URL` path this checkout lacks is skipped, and
failed in CI too.

A ```sh block that is one `manage.py maintenance_schedule` line is followed by what it
prints (all of it, or a run of whole lines), so the Kubernetes, systemd, GitHub
Actions, Vercel and crontab examples are the command's output and cannot drift; every
YAML and JSON block parses.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from io import StringIO
from itertools import pairwise
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command, get_commands
from django.urls import Resolver404, resolve

from maintenance import registry
from maintenance.runs.runner import run_task
from tests import tools
from tests.processes import ROOT, subprocess_env

README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
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


def all_docs() -> list[tuple[str, str]]:
    """(path relative to the project, text) of every document whose blocks are run."""
    return [(str(doc.relative_to(ROOT)), doc.read_text()) for doc in DOCS]


DOC_BLOCKS = [(name, block) for name, text in all_docs() for block in shell_blocks(text)]
BLOCKS = [block for _, block in DOC_BLOCKS]
LINES = [line for block in shell_blocks(README.read_text()) for line in block]


def tools_used(block: list[str]) -> list[str]:
    """The Debian tools the block's lines start with."""
    commands = {line.split()[0] for line in block}
    return sorted(name for name in tools.PACKAGES if name in commands)


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


def skip_unless_in_ci(reason: str) -> None:
    """Skip a line this checkout cannot run yet; in CI (`CI=true`) fail instead, so a
    misspelt command or endpoint cannot pass there as skipped."""
    if tools.in_ci():
        pytest.fail(f"{reason}: every documented line must run in CI")
    pytest.skip(reason)


def test_the_readme_has_runnable_lines_and_marks_the_rest():
    assert any("maintenance_status" in line for line in LINES)
    assert any(line.startswith("curl ") for line in LINES)
    assert not any("systemctl" in line or "make run" in line for line in LINES)


def test_every_variable_in_env_example_is_in_the_readme_table():
    names = re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    table = README.read_text()
    assert names
    assert [name for name in names if f"| `{name}` |" not in table] == []


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{name}: {b[0][:60]}" for name, b in DOC_BLOCKS])
def test_readme_block_works_as_written(block, request, live_server, cron_secret, tmp_path):
    reasons = [reason for reason in map(missing_here, block) if reason]
    if reasons:
        skip_unless_in_ci(reasons[0])
    if tools_used(block):
        tools.requires_tool(*tools_used(block))
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


# --- Schedule examples: the output of `maintenance_schedule`, not hand-written -------

README_HOST = "/srv/pluggedin"  # where the README's examples say the project lives
SCHEDULE_FORMATS = {"kubernetes", "systemd", "github-actions", "vercel", "crontab"}


def schedule_examples(text: str) -> list[tuple[str, str]]:
    """(command line, the block after it) for each one-line `maintenance_schedule` block."""
    blocks = list(BLOCK.finditer(text))
    examples = []
    for block, following in pairwise(blocks):
        lines = block["body"].strip().splitlines()
        runnable = block["lang"] in SHELL_LANGUAGES and not block["marker"]
        if runnable and len(lines) == 1 and "manage.py maintenance_schedule" in lines[0]:
            examples.append((lines[0], following["body"]))
    return examples


EXAMPLES = [example for _, text in all_docs() for example in schedule_examples(text)]


def as_on_the_readme_host(printed: str, settings) -> str:
    """This checkout's paths as the README's host has them."""
    python = f"{README_HOST}/.venv/bin/python"
    for here, there in (
        (settings.CRONTAB_PYTHON_EXECUTABLE, python),
        (sys.executable, python),
        (str(ROOT), README_HOST),
    ):
        printed = printed.replace(here, there)
    return printed


def test_the_docs_show_every_schedule_format():
    shown = {re.search(r"--format (\S+)", line)[1] for line, _ in EXAMPLES}
    assert shown == SCHEDULE_FORMATS


@pytest.mark.parametrize(("line", "shown"), EXAMPLES, ids=[line for line, _ in EXAMPLES])
def test_readme_schedule_example_is_the_commands_output(line, shown, settings):
    if missing_here(line):
        skip_unless_in_ci(missing_here(line))
    for task in registry.all_tasks():  # the default schedules, whatever this shell exports
        if hasattr(settings, f"{task.name.upper()}_CRON"):
            delattr(settings, f"{task.name.upper()}_CRON")
    out = StringIO()

    call_command(*shlex.split(line)[2:], stdout=out, stderr=StringIO())

    printed = as_on_the_readme_host(out.getvalue(), settings)
    assert len(shown.splitlines()) > 2
    assert "\n" + shown in "\n" + printed, f"README block differs from `{line}`:\n{printed}"


DATA_BLOCKS = [
    block
    for _, text in all_docs()
    for block in BLOCK.finditer(text)
    if block["lang"] in ("yaml", "json")
]


@pytest.mark.parametrize(
    "block", DATA_BLOCKS, ids=[block["body"].splitlines()[0][:60] for block in DATA_BLOCKS]
)
def test_readme_yaml_and_json_blocks_parse(block):
    if block["lang"] == "json":
        json.loads(block["body"])
    else:
        list(yaml.safe_load_all(block["body"]))
