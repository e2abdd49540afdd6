from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from maintenance import registry
from maintenance.management.base import quiet_console_logs
from maintenance.runs import pauses


class Command(BaseCommand):
    help = (
        "Pause a maintenance task on every host at once, until resumed or for a while "
        "(--for 2h). Every trigger (command, HTTP, crontab, scheduler, admin) then records "
        "a skipped run and answers success. A run in progress is not interrupted. Exits 1 "
        "on an unknown task or a bad option, changing nothing."
    )
    requires_system_checks: list[str] = []  # usable mid-incident, whatever else is wrong

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("task", metavar="TASK", help=f"One of {', '.join(registry.names())}.")
        parser.add_argument(
            "--reason", required=True, help="Why, for the other operators (status shows it)."
        )
        parser.add_argument(
            "--for",
            dest="duration",
            metavar="DURATION",
            help="Lapse by itself after this long: 30m, 2h, 1d (default: until resumed).",
        )

    def handle(self, *args: Any, task: str, reason: str, duration: str | None, **options: Any):
        try:
            length = pauses.parse_duration(duration) if duration is not None else None
            with quiet_console_logs(options["verbosity"]):
                done = pauses.pause(task, reason, pauses.cli_user(), length)
        except (registry.UnknownTask, pauses.BadPause) as exc:
            raise CommandError(str(exc)) from None
        if done.replaced is not None:
            self.stdout.write(f"Replaced the earlier pause ({done.replaced.describe()}).")
        self.stdout.write(pauses.paused_note(done.pause))
        if done.in_progress:
            self.stdout.write(pauses.in_progress_note(task, done.run))
