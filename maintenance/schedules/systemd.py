"""systemd: a `.service` and a `.timer` per task (no template units).

The service runs `manage.py <command> --trigger cron` once (`Type=oneshot`) as the given
user in the project folder, which reads its `.env` file as cron's entries do, and is
stopped after the task's `max_runtime`. The timer states the cron expression as
`OnCalendar=` in UTC, like the other exports. Cron fires on a day matching either
day field when both are restricted (`0 0 1 * 1`); systemd requires both within one
expression, so the timer carries one `OnCalendar=` per day field and fires on the union.
"""

from __future__ import annotations

import re
from collections.abc import Set

from maintenance.registry import Task
from maintenance.schedules.base import (
    HEADER,
    Export,
    ExportFile,
    ExportOptions,
    command_args,
    dashed,
    schedule_of,
)
from maintenance.schedules.base import seconds as max_runtime_seconds
from maintenance.schedules.cron import FULL_DAYS, FULL_WEEK, CronSchedule

WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
SYSTEMD_WEEK_ORDER = (1, 2, 3, 4, 5, 6, 0)  # systemd counts Monday first


def export(tasks: list[Task], options: ExportOptions) -> Export:
    files = []
    for task in tasks:
        unit = f"pluggedin-{dashed(task)}"
        files.append(ExportFile(f"{unit}.service", service(task, options)))
        files.append(ExportFile(f"{unit}.timer", timer(task)))
    return Export(files)


def service(task: Task, options: ExportOptions) -> str:
    argv = [options.python, f"{options.app_dir.rstrip('/')}/manage.py", *command_args(task)]
    return unit_file(
        ("Unit", f"Description={escape(f'pluggedin maintenance: {task.description}')}"),
        ("Unit", "Wants=network-online.target"),
        ("Unit", "After=network-online.target"),
        ("Service", "Type=oneshot"),
        ("Service", f"User={escape(options.user)}"),
        ("Service", f"WorkingDirectory={escape(options.app_dir)}"),
        ("Service", f"ExecStart={' '.join(exec_quote(arg) for arg in argv)}"),
        ("Service", f"TimeoutStartSec={max_runtime_seconds(task)}"),
    )


def timer(task: Task) -> str:
    lines = [("Unit", f"Description={escape(f'Schedule of {task.name} (cron {task.schedule})')}")]
    lines += [("Timer", f"OnCalendar={spec}") for spec in on_calendar(schedule_of(task))]
    lines += [("Timer", "AccuracySec=1s"), ("Timer", "Persistent=true")]
    lines += [("Install", "WantedBy=timers.target")]
    return unit_file(*lines)


def unit_file(*lines: tuple[str, str]) -> str:
    out = ["# " + HEADER.format(format="systemd")]
    section = None
    for name, line in lines:
        if name != section:
            out += ["", f"[{name}]"] if section else [f"[{name}]"]
            section = name
        out.append(line)
    return "\n".join(out) + "\n"


def on_calendar(schedule: CronSchedule) -> list[str]:
    """`OnCalendar=` values that together fire exactly when the cron expression does,
    written from cronsim's parse of its fields (the sets of minutes, hours, ...)."""
    fields = schedule.fields
    time = f"{component(fields.hours, 0, 23)}:{component(fields.minutes, 0, 59)}:00"
    month = component(fields.months, 1, 12)

    def spec(days: Set[int], weekdays: Set[int]) -> str:
        week = "" if weekdays == FULL_WEEK else weekday_list(weekdays) + " "
        return f"{week}*-{month}-{component(days, 1, 31)} {time} UTC"

    if not schedule.days_either:
        return [spec(fields.days, schedule.weekdays)]
    if schedule.every_day_of_month or schedule.every_weekday:
        return [spec(FULL_DAYS, FULL_WEEK)]
    return [spec(fields.days, FULL_WEEK), spec(FULL_DAYS, schedule.weekdays)]


def component(values: Set[int], low: int, high: int) -> str:
    """`*`, `00/10` (from 00 every 10 to the end), or a list of values and `a..b` ranges."""
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    first = ordered[0]
    if len(ordered) > 2:
        step = ordered[1] - first
        if ordered == list(range(first, high + 1, step)) and step > 1:
            return f"{first:02d}/{step}"
    return ",".join(f"{a:02d}" if a == b else f"{a:02d}..{b:02d}" for a, b in runs(ordered))


def weekday_list(weekdays: Set[int]) -> str:
    """`Mon..Fri`, `Sat..Sun`, `Mon,Wed`: names in systemd's Monday-first order."""
    positions = [i for i, day in enumerate(SYSTEMD_WEEK_ORDER) if day in weekdays]
    names = [WEEKDAYS[day] for day in SYSTEMD_WEEK_ORDER]
    return ",".join(names[a] if a == b else f"{names[a]}..{names[b]}" for a, b in runs(positions))


def runs(ordered: list[int]) -> list[tuple[int, int]]:
    """Consecutive stretches of sorted numbers: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    stretches: list[tuple[int, int]] = []
    for value in ordered:
        if stretches and stretches[-1][1] == value - 1:
            stretches[-1] = (stretches[-1][0], value)
        else:
            stretches.append((value, value))
    return stretches


def escape(value: str) -> str:
    """`%` starts a specifier in unit files; a line break would end the setting."""
    return value.replace("%", "%%").replace("\n", " ")


def exec_quote(arg: str) -> str:
    """One `ExecStart=` word: specifiers and variables escaped, quoted when needed."""
    arg = escape(arg).replace("$", "$$")
    if arg and not re.search(r"[\s\"'\\;]", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
