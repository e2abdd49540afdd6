from typing import Any

from maintenance.commands import TaskCommand, add_dry_run


class Command(TaskCommand):
    help = (
        "Delete expired OAuth PKCE states (task pkce_cleanup). Safe to run from cron at any "
        "frequency: overlapping runs skip. Exits 1 on failure."
    )
    task_name = "pkce_cleanup"

    def add_task_arguments(self, parser) -> None:
        add_dry_run(parser)

    def task_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"dry_run": options["dry_run"]}
