"""django-crontab's `CRONJOBS`, read from the task declarations.

`pluggedin/settings.py` sets `CRONJOBS = DeclaredCronJobs()`. django-crontab reads the
setting only once the apps are loaded (`crontab add|show|remove|run`), and then this
sequence lists one job per declared task on the schedule in force (`<TASK>_CRON`). This
module imports nothing of the project at import time: settings import it.

The texts settings put into the lines (`CRONTAB_COMMAND_PREFIX`, the log file of the
suffix) go through `maintenance.schedules.cron.cron_escaped` first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

CRON_FUNCTION = "maintenance.cron.run_task_from_cron"

CronJob = tuple[str, str, list[str]]


class DeclaredCronJobs(Sequence):
    """One `(schedule, CRON_FUNCTION, [task name])` per declared task, in run order."""

    def _jobs(self) -> list[CronJob]:
        from maintenance import registry

        return [(task.schedule, CRON_FUNCTION, [task.name]) for task in registry.all_tasks()]

    def __getitem__(self, index):  # type: ignore[override]
        return self._jobs()[index]

    def __len__(self) -> int:
        return len(self._jobs())

    def __iter__(self) -> Iterator[CronJob]:
        return iter(self._jobs())

    def __repr__(self) -> str:
        return "DeclaredCronJobs()"
