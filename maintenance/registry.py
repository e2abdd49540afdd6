"""The task registry: every maintenance task, registered by the app that owns its data.

`maintenance` never imports the apps whose tasks it runs; each app registers its tasks in
`AppConfig.ready()`, and every front door (command, view, crontab entry, scheduler) looks
them up here by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings

TaskFunction = Callable[..., Mapping[str, Any]]


@dataclass(frozen=True)
class Task:
    """A named unit of maintenance work.

    `func` does the work and returns JSON-serialisable counts; `message` is formatted with
    those counts for humans, and `dry_run_message` likewise on a dry run. `gate` returns a
    reason when the task must not run at all in this deployment (for example email sending
    outside the cloud), or None. `backlog` counts the work waiting for the task (for the
    status endpoint); `options` names the keyword arguments `func` accepts from the front
    doors (e.g. `dry_run`).
    """

    name: str
    func: TaskFunction
    description: str
    message: str
    cron: str
    interval: timedelta
    run_at_startup: bool = False
    gate: Callable[[], str | None] | None = None
    options: frozenset[str] = field(default_factory=frozenset)
    backlog: Callable[[], Mapping[str, int]] | None = None
    dry_run_message: str = ""

    @property
    def setting_prefix(self) -> str:
        return self.name.upper()

    @property
    def schedule(self) -> str:
        """The cron expression in force: `<NAME>_CRON` in settings, else the default."""
        return getattr(settings, f"{self.setting_prefix}_CRON", None) or self.cron

    @property
    def every(self) -> timedelta:
        """The in-process interval: `<NAME>_INTERVAL_SECONDS` in settings, else the default."""
        seconds = getattr(settings, f"{self.setting_prefix}_INTERVAL_SECONDS", None)
        return timedelta(seconds=seconds) if seconds else self.interval

    def blocked_reason(self) -> str | None:
        return self.gate() if self.gate else None

    def pending(self) -> dict[str, int]:
        return dict(self.backlog()) if self.backlog else {}

    def describe(self, result: Mapping[str, Any]) -> str:
        """A dry run deleted nothing; saying "Deleted 0" would hide what it found."""
        template = self.dry_run_message if result.get("dryRun") else ""
        return (template or self.message).format_map(_Defaulting(result))


class _Defaulting(dict):
    def __missing__(self, key: str) -> str:
        return "?"


class DuplicateTask(ValueError):
    pass


class UnknownTask(KeyError):
    def __str__(self) -> str:
        known = ", ".join(names()) or "none registered"
        return f"Unknown task {self.args[0]!r} (known: {known})"


_tasks: dict[str, Task] = {}


def register(task: Task) -> Task:
    if task.name in _tasks:
        raise DuplicateTask(f"Task {task.name!r} is already registered")
    _tasks[task.name] = task
    return task


def get(name: str) -> Task:
    try:
        return _tasks[name]
    except KeyError:
        raise UnknownTask(name) from None


def names() -> list[str]:
    return list(_tasks)


def all_tasks() -> list[Task]:
    return list(_tasks.values())


def reset(tasks: list[Task] | None = None) -> list[Task]:
    """Replace the registry (for tests); returns what was registered before."""
    previous = all_tasks()
    _tasks.clear()
    for task in tasks or []:
        register(task)
    return previous
