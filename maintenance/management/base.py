"""The base of every task command, where Django keeps its own (`management/base.py`).

A task's command is three lines: `class Command(TaskCommand): task = PKCE_CLEANUP`. Its
help, its flags (`--json`, `--trigger` and the task's declared options) and its exit codes
come from the declaration: 0 on success or a skip, 1 with one line on stderr on failure.
"""

from __future__ import annotations

import json
import logging
from argparse import ArgumentParser
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from maintenance.models import Trigger
from maintenance.outcome import RunOutcome
from maintenance.registry import BadOption, Task
from maintenance.runs.runner import run_task

CRON_SAFE = (
    "Safe to run from cron at any frequency and on several hosts: a run that finds the task "
    "held by another runner skips. Exits 1 on failure."
)


class TaskCommand(BaseCommand):
    task: Task
    # Cron runs these every few minutes: their stderr carries the one-line error only, not
    # configuration warnings (those are for `manage.py check`), and no `crontab -l` per run.
    requires_system_checks: list[str] = []

    @property
    def help(self) -> str:  # type: ignore[override]
        return f"{self.task.description.rstrip('.')} (task {self.task.name}). {CRON_SAFE}"

    def add_arguments(self, parser: ArgumentParser) -> None:
        add_json_flag(parser, "Print exactly the JSON body the HTTP endpoint would return.")
        add_trigger_flag(parser)
        for option in self.task.options:
            if option.is_switch:
                parser.add_argument(option.flag, action="store_true", help=option.help)
            else:
                parser.add_argument(option.flag, metavar=option.metavar, help=option.help)

    def handle(self, *args: Any, as_json: bool, trigger: str, **options: Any) -> None:
        task_options = self.task_options(options)
        with quiet_console_logs(options["verbosity"]):
            outcome = run_task(self.task.name, trigger, **task_options)
        report(self, outcome, as_json=as_json)

    def task_options(self, parsed: dict[str, Any]) -> dict[str, Any]:
        """The declared options given on the command line, as the task takes them."""
        given = {}
        for option in self.task.options:
            value = parsed.get(option.name)
            if option.is_switch:
                if value:
                    given[option.name] = True
            elif value is not None:
                try:
                    given[option.name] = option.from_text(value, option.flag)
                except BadOption as exc:
                    raise CommandError(str(exc)) from None
        return given


def add_json_flag(parser: ArgumentParser, help: str) -> None:
    parser.add_argument("--json", action="store_true", dest="as_json", help=help)


def add_trigger_flag(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--trigger",
        choices=[Trigger.COMMAND.value, Trigger.CRON.value],
        default=Trigger.COMMAND.value,
        help="Record the run under this trigger (crontab entries and exported schedules "
        "pass 'cron').",
    )


def report(command: BaseCommand, outcome: RunOutcome, *, as_json: bool) -> None:
    """Print the outcome; raise CommandError (exit 1, one line on stderr) on failure."""
    if as_json:
        command.stdout.write(json_dumps(outcome.body()))
    elif not outcome.failed:
        command.stdout.write(f"{outcome.message} (run {outcome.run_id}, {outcome.duration_ms} ms)")
    if outcome.failed:
        raise CommandError(f"{outcome.task} failed: {outcome.error}") from outcome.exception


@contextmanager
def quiet_console_logs(verbosity: int) -> Iterator[None]:
    """Below `-v 2`, keep the runner's log lines off the terminal: the command prints its
    own result line, so a failure reads as exactly one line on stderr."""
    if verbosity >= 2:
        yield
        return
    handlers = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
    levels = [h.level for h in handlers]
    for handler in handlers:
        handler.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels, strict=True):
            handler.setLevel(level)


def json_dumps(body: dict[str, Any]) -> str:
    """Serialise exactly as `JsonResponse` does, so both front doors print the same bytes."""
    return json.dumps(body, cls=DjangoJSONEncoder)
