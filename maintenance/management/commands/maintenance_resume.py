from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from maintenance import registry
from maintenance.management.base import quiet_console_logs
from maintenance.runs import pauses


class Command(BaseCommand):
    help = (
        "Resume a paused maintenance task on every host: its next trigger runs it. "
        "Resuming a task that is not paused changes nothing and exits 0; an unknown task "
        "exits 1."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("task", metavar="TASK", help=f"One of {', '.join(registry.names())}.")

    def handle(self, *args: Any, task: str, **options: Any) -> None:
        try:
            with quiet_console_logs(options["verbosity"]):
                lifted = pauses.resume(task, pauses.cli_user())
        except registry.UnknownTask as exc:
            raise CommandError(str(exc)) from None
        if lifted is None:
            self.stdout.write(f"{task} was not paused; nothing changed.")
        else:
            self.stdout.write(
                f"Resumed {task} on every host (it was {lifted.describe()}); "
                "its next trigger runs it."
            )
