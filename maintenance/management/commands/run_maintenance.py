from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from maintenance import registry
from maintenance.management.base import (
    add_json_flag,
    add_trigger_flag,
    json_dumps,
    quiet_console_logs,
)
from maintenance.outcome import RunOutcome
from maintenance.runs.runner import run_task


class Command(BaseCommand):
    help = (
        "Run every maintenance task once, or only the named ones, in order, printing one "
        "line per task. Safe for cron: a task another runner holds is skipped. Exits 1 if "
        "any task failed, or without running anything if a name is unknown."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "tasks",
            nargs="*",
            metavar="TASK",
            help=f"Task names (default: all of {', '.join(registry.names())}).",
        )
        add_json_flag(
            parser, 'Print {"success": ..., "tasks": [...]} with each task\'s HTTP response body.'
        )
        add_trigger_flag(parser)

    def handle(
        self, *args: Any, tasks: list[str], as_json: bool, trigger: str, **options: Any
    ) -> None:
        names = list(dict.fromkeys(tasks)) or registry.names()
        unknown = [name for name in names if name not in registry.names()]
        if unknown:
            known = ", ".join(registry.names()) or "none registered"
            raise CommandError(f"Unknown task {', '.join(unknown)} (known: {known}); ran nothing.")
        with quiet_console_logs(options["verbosity"]):
            outcomes = [run_task(name, trigger) for name in names]
        failed = [outcome.task for outcome in outcomes if outcome.failed]
        if as_json:
            bodies = [outcome.body() for outcome in outcomes]
            self.stdout.write(json_dumps({"success": not failed, "tasks": bodies}))
        else:
            for outcome in outcomes:
                self.report(outcome)
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(outcomes)} tasks failed: {', '.join(failed)}"
            )

    def report(self, outcome: RunOutcome) -> None:
        where = f"(run {outcome.run_id}, {outcome.duration_ms} ms)"
        if outcome.failed:
            self.stderr.write(f"{outcome.task}: FAILED {outcome.error} {where}")
        else:
            self.stdout.write(f"{outcome.task}: {outcome.message} {where}")
