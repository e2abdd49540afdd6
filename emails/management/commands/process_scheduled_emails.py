from typing import Any

from django.core.management.base import CommandError

from emails.bounds import BadBound, positive_number
from maintenance.commands import TaskCommand


class Command(TaskCommand):
    help = (
        "Send due onboarding emails (task scheduled_emails). Safe to run from cron at any "
        "frequency and on several hosts: each email goes out once, overlapping runs skip. "
        "Does nothing unless CLOUD_DEPLOY=true. Exits 1 on failure."
    )
    task_name = "scheduled_emails"

    def add_task_arguments(self, parser) -> None:
        parser.add_argument(
            "--limit",
            metavar="N",
            help="Handle at most N emails in this run (default SCHEDULED_EMAILS_LIMIT).",
        )
        parser.add_argument(
            "--max-seconds",
            metavar="S",
            help="Stop claiming new emails after S seconds (default SCHEDULED_EMAILS_MAX_SECONDS).",
        )

    def task_options(self, options: dict[str, Any]) -> dict[str, Any]:
        bounds = {}
        for flag, name, kind in (
            ("--limit", "limit", int),
            ("--max-seconds", "max_seconds", float),
        ):
            if options[name] is not None:
                try:
                    bounds[name] = positive_number(options[name], flag, kind)
                except BadBound as exc:
                    raise CommandError(str(exc)) from None
        return bounds
