"""GitHub Actions: one workflow that calls each task's HTTP endpoint on its schedule.

`APP_URL` and `CRON_SECRET` come from the repository's secrets, through the step's
environment (never spliced into the script). `curl --fail-with-body` fails the job on any
4xx or 5xx and prints the JSON error; `-m` waits as long as the task may run. Every
scalar that could hold `: ` or `#` is quoted, so the file parses as YAML as written.
Schedules are in UTC, in numbers (GitHub takes no month or weekday names), and GitHub
runs them at most every 5 minutes, often a few minutes late.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

from maintenance.registry import Task
from maintenance.schedules.base import (
    HEADER,
    Export,
    ExportFile,
    ExportOptions,
    schedule_of,
    without_endpoint,
)
from maintenance.schedules.base import seconds as max_runtime_seconds
from maintenance.schedules.cron import numeric

FILE_NAME = "maintenance.yml"
RUNNER_START_MINUTES = 5


def export(tasks: list[Task], options: ExportOptions) -> Export:
    called = [task for task in tasks if task.path]
    left_out = [without_endpoint(task, "github-actions") for task in tasks if not task.path]
    crons = list(dict.fromkeys(cron_of(task) for task in called))
    lines = [
        "# " + HEADER.format(format="github-actions"),
        "# Copy to .github/workflows/; set APP_URL and CRON_SECRET as repository secrets.",
        "name: maintenance",
        "on:",
        "  schedule:",
        *(f"    - cron: {quoted(cron)}" for cron in crons),
        "  workflow_dispatch: {}",
        "permissions: {}",
        "jobs:",
    ]
    for task in called:
        lines += list(job(task))
    return Export([ExportFile(FILE_NAME, "\n".join(lines) + "\n")], left_out)


def job(task: Task) -> Iterator[str]:
    when = f"github.event_name == 'workflow_dispatch' || github.event.schedule == '{cron_of(task)}'"
    timeout = math.ceil(max_runtime_seconds(task) / 60) + RUNNER_START_MINUTES
    yield f"  {task.name}:"
    yield f"    if: {quoted(when)}"
    yield "    runs-on: ubuntu-latest"
    yield f"    timeout-minutes: {timeout}"
    yield "    steps:"
    yield f"      - name: {quoted(f'{task.name}: POST {task.path}')}"
    yield "        env:"
    yield "          APP_URL: ${{ secrets.APP_URL }}"
    yield "          CRON_SECRET: ${{ secrets.CRON_SECRET }}"
    yield "        run: |"
    yield (
        f"          curl --fail-with-body -sS -m {max_runtime_seconds(task)} -X POST"
        f' -H "Authorization: Bearer $CRON_SECRET" "$APP_URL{task.path}"'
    )


def cron_of(task: Task) -> str:
    schedule_of(task)
    return numeric(task.schedule)


def quoted(text: str) -> str:
    """A double-quoted YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(text)
