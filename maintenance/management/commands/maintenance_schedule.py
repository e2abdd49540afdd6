import getpass
import os
import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from maintenance.isotime import iso_utc
from maintenance.runs import clock
from maintenance.schedules.exports import FORMATS, Export, ExportOptions, ScheduleError, export
from maintenance.schedules.upcoming import UpcomingError, instant, tasks_named, tick_count, upcoming

DEFAULTS = ExportOptions(app_dir="", python="", user="")


class Command(BaseCommand):
    help = (
        "Print the maintenance schedule (every task on its schedule in force, *_CRON "
        "included) for another scheduler: Kubernetes CronJobs, systemd timers, a GitHub "
        "Actions workflow, vercel.json or the system crontab lines. Changes nothing; with "
        "--output, writes the files to a folder instead."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        mode = parser.add_mutually_exclusive_group(required=True)
        mode.add_argument("--format", metavar="FORMAT", help=f"One of {', '.join(FORMATS)}.")
        mode.add_argument(
            "--next",
            metavar="N",
            help="Instead of an export: the next N ticks of each task named (every task when "
            "none is), one 'TASK<TAB>ISO 8601 UTC' line each. Reads no database.",
        )
        parser.add_argument(
            "--from",
            dest="after",
            metavar="ISO8601",
            help="--next: count ticks after this instant (default: now; no offset means UTC).",
        )
        parser.add_argument("tasks", nargs="*", metavar="TASK", help="--next: the tasks.")
        parser.add_argument(
            "--output", metavar="DIR", help="Write the files into DIR (created if missing)."
        )
        parser.add_argument(
            "--image",
            default=DEFAULTS.image,
            help=f"kubernetes: the app's image (default {DEFAULTS.image}).",
        )
        parser.add_argument(
            "--secret",
            default=DEFAULTS.secret,
            help=f"kubernetes: Secret the jobs take their environment from "
            f"(default {DEFAULTS.secret}).",
        )
        parser.add_argument(
            "--config-map",
            default=DEFAULTS.config_map,
            help=f"kubernetes: ConfigMap the jobs take their environment from "
            f"(default {DEFAULTS.config_map}).",
        )
        parser.add_argument(
            "--app-dir",
            default=str(settings.BASE_DIR),
            help="systemd: the project folder on the host (default: this one).",
        )
        parser.add_argument(
            "--python",
            default=sys.executable,
            help="systemd: the interpreter (default: the one running this command).",
        )
        parser.add_argument(
            "--user",
            help="systemd: the user the tasks run as (default: the current user).",
        )

    def handle(
        self, *args: Any, format: str | None, output: str | None, python: str, **options: Any
    ) -> None:
        if format is None:
            self.print_upcoming(options["next"], options["after"], options["tasks"])
            return
        if options["tasks"] or options["after"]:
            raise CommandError("TASK and --from go with --next, not --format")
        target = ExportOptions(
            # systemd wants absolute paths; a bare interpreter name is looked up on PATH
            app_dir=os.path.abspath(options["app_dir"]),
            python=os.path.abspath(python) if os.sep in python else python,
            user=options["user"] or current_user(),
            image=options["image"],
            secret=options["secret"],
            config_map=options["config_map"],
        )
        try:
            result = export(format, target)
        except ScheduleError as exc:
            raise CommandError(str(exc)) from None
        for reason in result.left_out:
            self.stderr.write(reason)
        if output:
            self.write_files(result, Path(output))
        else:
            self.stdout.write(self.as_text(result), ending="")

    def print_upcoming(self, count: str, after: str | None, names: list[str]) -> None:
        try:
            rows = upcoming(
                tasks_named(names),
                instant(after) if after else clock.now(),
                tick_count(count),
            )
        except UpcomingError as exc:
            raise CommandError(str(exc)) from None
        for name, tick in rows:
            self.stdout.write(f"{name}\t{iso_utc(tick)}")

    def as_text(self, result: Export) -> str:
        """One file as it is; several each under a `# NAME` line."""
        if len(result.files) == 1:
            return result.files[0].text
        return "\n".join(f"# {file.name}\n{file.text}" for file in result.files)

    def write_files(self, result: Export, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for file in result.files:
                (folder / file.name).write_text(file.text)
        except OSError as exc:
            raise CommandError(f"Cannot write to {folder}: {exc.strerror or exc}") from None
        for file in result.files:
            self.stdout.write(f"Wrote {folder / file.name}")


def current_user() -> str:
    """The login name, or the numeric uid (systemd takes either) where there is none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
