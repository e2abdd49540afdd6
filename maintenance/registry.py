"""Task declarations and the registry every front door reads.

Each app declares its tasks once, in its own `tasks.py`, as `register(Task(...))`; its
`AppConfig.ready()` only imports that module. The command, the HTTP view, the crontab
entries, the scheduler, `run_maintenance`, status, metrics and the schedule exports all
look tasks up here: nothing keeps a parallel list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from maintenance.conf import task_seconds, task_setting
from maintenance.schedules import cron

TaskFunction = Callable[..., Mapping[str, Any]]


class BadOption(ValueError):
    """A front-door option with a value the task cannot take; the message names it."""


@dataclass(frozen=True)
class Option:
    """A keyword argument a task function accepts from its front doors: `--dry-run` on the
    command line, `?dry_run=1` on the HTTP endpoint."""

    name: str
    help: str
    parse: Callable[[str], Any] | None = None  # None: a switch (flag / true-false parameter)
    metavar: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def is_switch(self) -> bool:
        return self.parse is None

    def from_text(self, raw: str, label: str | None = None) -> Any:
        """`raw` as the task takes it; BadOption naming `label` (default: the name)."""
        label = label or self.name
        if self.parse is None:
            return parse_switch(raw, label)
        try:
            return self.parse(raw)
        except (TypeError, ValueError) as exc:
            raise BadOption(f"{label} {exc}") from None


def parse_switch(raw: str, label: str) -> bool:
    text = raw.strip().lower()
    if text in ("", "1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise BadOption(f"{label} must be true or false, got {raw!r}")


def positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """A parser for a positive `kind`; refuses zero, negatives, inf and nan."""
    noun = "integer" if kind is int else "number"

    def parse(raw: str) -> int | float:
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            raise ValueError(f"must be a positive {noun}, got {raw!r}") from None
        if not value > 0 or value == float("inf"):
            raise ValueError(f"must be a positive {noun}, got {raw!r}")
        return value

    return parse


@dataclass(frozen=True)
class Task:
    """A named unit of maintenance work, declared once.

    `func` does the work and returns JSON-serialisable counts; `message` is formatted with
    those counts for humans (`dry_run_message` on a dry run). `cron` is the default
    schedule, the only one: `<NAME>_CRON` overrides it. `gate` returns a
    reason when the task must not run in this deployment (emails outside the cloud), or
    None. `backlog` counts the work waiting for the task, keyed by snake_case kind
    (`expired_pkce_states`: the metrics label; status shows it in camelCase). `options`
    are the arguments the front doors may pass.
    `command` is the management command that runs it alone (exports call it), `path` its
    HTTP endpoint; `order` places it in `run_maintenance` and every listing.
    """

    name: str
    func: TaskFunction
    description: str
    message: str
    cron: str
    command: str = ""
    path: str = ""
    order: int = 100
    run_at_startup: bool = False
    gate: Callable[[], str | None] | None = None
    backlog: Callable[[], Mapping[str, int]] | None = None
    options: tuple[Option, ...] = ()
    dry_run_message: str = ""
    max_runtime: timedelta = timedelta(minutes=30)

    @property
    def schedule(self) -> str:
        """The cron expression in force: `<NAME>_CRON`, else the declared default."""
        return task_setting(self.name, "CRON") or self.cron

    @property
    def cron_schedule(self) -> cron.CronSchedule:
        """The schedule in force, parsed: its ticks (`next_tick`, `latest_tick`, ...).
        Raises cron.CronError for an expression E002 refuses."""
        return cron.parse(self.schedule)

    @property
    def max_runtime_seconds(self) -> float:
        """The deadline in force: `<NAME>_MAX_RUNTIME_SECONDS`, else the declared default."""
        seconds = task_seconds(self.name, "MAX_RUNTIME_SECONDS")
        return seconds if seconds is not None else self.max_runtime.total_seconds()

    @property
    def every(self) -> timedelta:
        """The typical gap between two ticks of the schedule in force."""
        return self.cron_schedule.typical_gap()

    @property
    def starting_deadline(self) -> timedelta | None:
        """`<NAME>_STARTING_DEADLINE_SECONDS`: how late after its tick a run may still
        start; None (unset) means until the next tick."""
        seconds = task_seconds(self.name, "STARTING_DEADLINE_SECONDS")
        return timedelta(seconds=seconds) if seconds is not None else None

    def option(self, name: str) -> Option | None:
        return next((option for option in self.options if option.name == name), None)

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


def all_tasks() -> list[Task]:
    """Every task in run order (`order`, then name)."""
    return sorted(_tasks.values(), key=lambda task: (task.order, task.name))


def names() -> list[str]:
    return [task.name for task in all_tasks()]


def reset(tasks: list[Task] | None = None) -> list[Task]:
    """Replace the registry (for tests); returns what was registered before."""
    previous = all_tasks()
    _tasks.clear()
    for task in tasks or []:
        register(task)
    return previous


DRY_RUN = Option("dry_run", "Count what would be deleted; delete nothing.")
