"""The system crontab: entries in step with the declarations, and what cron jobs will see.

W201 and W202 speak only under `manage.py crontab ...`: other commands install nothing.
E201 speaks with every check, so `crontab add` refuses before it writes anything.
W203 (`check --deploy`) speaks when this host's local time zone would make cron fire a
task at other instants than its UTC ticks: cron reads the same five fields as local
wall-clock times, while every tick, status and metric here is in UTC.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import takewhile
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.checks import Error, Warning, register

from maintenance import registry
from maintenance.conf import maintenance_settings
from maintenance.envfile import shell_only_variables
from maintenance.logs.known_secrets import named_secrets
from maintenance.schedules.cron import CronError, CronSchedule, cron_escaped

W005 = Warning(
    "The installed crontab entries for this project are out of date with CRONJOBS, so "
    "cron runs old schedules or fails with 'No job with hash ... found'.",
    hint="Run `python manage.py crontab add --verbosity 0` as the user whose crontab runs "
    "the tasks (it replaces this project's entries; at the default verbosity django-crontab "
    "stops with 'No job with hash' while listing the stale ones).",
    id="maintenance.W005",
)
E201 = "maintenance.E201"
W201 = "maintenance.W201"
W202 = "maintenance.W202"
W203 = "maintenance.W203"
# Windows compared, a quarter of a year apart so a daylight-saving offset shows in one.
LOCAL_TIME_WINDOWS = [timedelta(days=91 * quarter) for quarter in range(4)]
LOCAL_TIME_SPAN = timedelta(days=2)


def installing() -> bool:
    return sys.argv[1:2] == ["crontab"]


@register("maintenance")
def check_crontab_in_sync(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Only when CRONJOBS is defined and some entries for this project are installed: an
    installation that triggers tasks by other means has nothing to keep in sync."""
    if not settings.CRONJOBS:
        return []
    from maintenance.checks.crontab_sync import crontab_drift  # imports django-crontab

    drift = crontab_drift()
    return [W005] if drift and drift.installed and not drift.in_sync else []


@register("crontab")
def check_prefix_holds_no_secret(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """A crontab is a plain file any `crontab -l` (and root, and backups) can read: the
    prefix may name where secrets live, never hold one. The message names the variables
    whose values it holds, never the values."""
    prefix = settings.CRONTAB_COMMAND_PREFIX or ""
    held = sorted(
        {
            variable
            for variable, value in named_secrets()
            if value in prefix or cron_escaped(value) in prefix
        }
    )
    if not held:
        return []
    return [
        Error(
            f"CRONTAB_COMMAND_PREFIX holds the value of {', '.join(held)}: `crontab add` "
            "would write it into the crontab, where anyone who lists it reads it.",
            hint="Take it out of CRONTAB_COMMAND_PREFIX: cron jobs read their secrets from "
            "the project's .env file, or from the file "
            "CRONTAB_COMMAND_PREFIX=PLUGGEDIN_ENV_FILE=/path names.",
            id=E201,
        )
    ]


@register("crontab")
def check_cron_environment(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if not installing():
        return []
    env_file = maintenance_settings.ENV_FILE
    names = shell_only_variables(os.environ, env_file)
    if not names:
        return []
    return [
        Warning(
            f"{', '.join(names)} set in this shell but not (or differently) in "
            f"{env_file or 'the .env file'}: the crontab entries will not see these values.",
            hint="Put them in the project's .env file (cron reads it), or point the "
            "entries at another file with CRONTAB_COMMAND_PREFIX=PLUGGEDIN_ENV_FILE=/path.",
            id=W201,
        )
    ]


@register("crontab")
def check_cron_log_folder(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Cron's shell runs nothing when it cannot open the log its entry appends to, so
    `manage.py crontab add` makes the folder first."""
    if not installing():
        return []
    folder = Path(settings.CRON_LOG_FILE).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [
            Warning(
                f"Cannot create {folder} for CRON_LOG_FILE ({exc.strerror}): cron will run "
                "none of the entries.",
                hint="Create the folder for the user whose crontab runs the tasks, or set "
                "CRON_LOG_FILE to a writable path.",
                id=W202,
            )
        ]
    return []


@register("maintenance", deploy=True)
def check_cron_local_time(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Compares each task's UTC ticks with the instants cron would pick in this host's
    zone (process TZ included); identical sets (UTC, or an offset the schedule absorbs,
    such as `*/10` at +05:30) need no warning."""
    zone = host_zone()
    if zone is None:
        return []
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    drifting = []
    for task in registry.all_tasks():
        try:
            schedule = task.cron_schedule
        except CronError:
            continue  # E002 reports it
        first = first_local_misfire(schedule, start, zone)
        if first is not None:
            drifting.append(f"{task.name} (e.g. at {first:%Y-%m-%d %H:%M} UTC)")
    if not drifting:
        return []
    return [
        Warning(
            f"This host's local time zone is not UTC ({zone}): cron reads "
            f"crontab times as local wall-clock times, so {', '.join(drifting)} would run "
            "at other instants than the UTC ticks that status, metrics and missed-tick "
            "accounting expect.",
            hint="Run cron in UTC: set the host's zone (`timedatectl set-timezone Etc/UTC`, "
            "or TZ=UTC in the cron daemon's environment) and restart cron, or trigger the "
            "tasks with the in-process scheduler or an exported schedule instead.",
            id=W203,
        )
    ]


def host_zone() -> ZoneInfo | None:
    """The zone this process started in: its TZ, else /etc/localtime (cron's default).
    Django replaces TZ with settings.TIME_ZONE at start-up, so the original is read from
    the environment the process was started with. None when it cannot be told."""
    name = _startup_variable("TZ")
    try:
        if name:
            return ZoneInfo(name.removeprefix(":"))
        with open("/etc/localtime", "rb") as localtime:
            return ZoneInfo.from_file(localtime, key="localtime")
    except (OSError, ValueError, ZoneInfoNotFoundError):
        return None


def _startup_variable(name: str) -> str | None:
    try:
        environ = Path("/proc/self/environ").read_bytes()
    except OSError:
        return os.environ.get(name)
    prefix = f"{name}=".encode()
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


def first_local_misfire(schedule: CronSchedule, start: datetime, zone: ZoneInfo) -> datetime | None:
    """The earliest instant, in a few short windows from `start`, at which cron in this
    host's zone and the UTC ticks disagree (one fires, the other not); None if never."""
    for offset in LOCAL_TIME_WINDOWS:
        begin = start + offset
        end = begin + LOCAL_TIME_SPAN
        utc = set(_ticks_between(schedule, begin, end))
        local = {
            moment
            for wall in _ticks_between(schedule, begin - timedelta(days=1), end + timedelta(days=1))
            if begin < (moment := wall.replace(tzinfo=zone).astimezone(UTC)) < end
        }
        differ = utc ^ local
        if differ:
            return min(differ)
    return None


def _ticks_between(schedule: CronSchedule, begin: datetime, end: datetime) -> Iterator[datetime]:
    return takewhile(lambda tick: tick < end, schedule.ticks(begin))
