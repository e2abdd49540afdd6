"""The next ticks of tasks' schedules in force, read from the cron grammar alone: what
`maintenance_schedule --next` prints, so an operator sees when each task will fire
without a database or a scheduler running."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

from maintenance import registry
from maintenance.schedules.cron import CronError

MAX_TICKS = 10_000  # per task: enough for a month of minutes, and never an endless loop


class UpcomingError(ValueError):
    """A request for upcoming ticks that cannot be answered; the message is one line."""


def tick_count(text: str) -> int:
    """`--next N`: a whole number from 1 to MAX_TICKS."""
    try:
        count = int(text)
    except ValueError:
        raise UpcomingError(f"--next wants a whole number of ticks, not {text!r}") from None
    if not 1 <= count <= MAX_TICKS:
        raise UpcomingError(f"--next wants 1 to {MAX_TICKS} ticks, not {count}")
    return count


def instant(text: str) -> datetime:
    """`--from`: an ISO 8601 instant; one without an offset is UTC, as every time here."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UpcomingError(
            f"--from wants an ISO 8601 instant such as 2026-12-02T10:15:00Z, not {text!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def tasks_named(names: list[str]) -> list[registry.Task]:
    """The tasks named, in that order; every declared task when none is named."""
    try:
        return [registry.get(name) for name in names] if names else registry.all_tasks()
    except registry.UnknownTask as exc:
        raise UpcomingError(str(exc)) from None


def upcoming(tasks: list[registry.Task], after: datetime, count: int) -> list[tuple[str, datetime]]:
    """(task name, tick) for the first `count` ticks of each task strictly after `after`,
    task by task, each in time order."""
    rows = []
    for task in tasks:
        try:
            schedule = task.cron_schedule
        except CronError as exc:
            raise UpcomingError(f"{task.name}: schedule {task.schedule!r} {exc}") from None
        rows += [(task.name, tick) for tick in islice(schedule.ticks(after), count)]
    return rows
