"""The base every task command shares: `--json`, exit codes and one-line errors.

A subclass names its task and, if it takes any, adds its own flags in
`add_task_arguments`; everything it returns from `task_options` is passed to the task.
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

from .models import Trigger
from .runner import RunOutcome, run_task


class TaskCommand(BaseCommand):
    task_name: str = ""
    trigger: str = Trigger.COMMAND
    # Cron runs these every few minutes: their stderr carries the one-line error only, not
    # configuration warnings (those are for `manage.py check`), and no `crontab -l` per run.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="Print exactly the JSON body the HTTP endpoint would return.",
        )
        parser.add_argument(
            "--trigger",
            choices=[Trigger.COMMAND, Trigger.CRON],
            default=self.trigger,
            help="Record the run under this trigger (the crontab entries pass 'cron').",
        )
        self.add_task_arguments(parser)

    def add_task_arguments(self, parser: ArgumentParser) -> None:
        """Add the task's own flags."""

    def task_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return {}

    def handle(self, *args: Any, as_json: bool, trigger: str, **options: Any) -> None:
        with quiet_console_logs(options["verbosity"]):
            outcome = run_task(self.task_name, trigger, **self.task_options(options))
        self.report(outcome, as_json=as_json)

    def report(self, outcome: RunOutcome, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json_dumps(outcome.body()))
        elif not outcome.failed:
            self.stdout.write(f"{outcome.message} (run {outcome.run_id}, {outcome.duration_ms} ms)")
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


class CleanupCommand(TaskCommand):
    """A cleanup task's command: the common flags plus `--dry-run`."""

    def add_task_arguments(self, parser: ArgumentParser) -> None:
        add_dry_run(parser)

    def task_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"dry_run": options["dry_run"]}


def add_dry_run(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="Count what would be deleted; delete nothing.",
    )
