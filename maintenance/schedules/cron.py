"""Five-field cron expressions as the system crontab reads them (Debian's cron), in UTC.

cronsim (healthchecks' evaluator) parses and iterates them with Debian cron's rules, the
day rule included: when both day fields are restricted (`0 0 1 * 1`) a day that matches
either fires. It also reads extensions Debian's cron refuses, so `parse()` refuses them
first and the system check, the scheduler, status and every export agree on each
expression: a sixth (seconds) field, `@` nicknames, `L`, `W`, `#`, `?`, and a step longer
than its field (cronsim reads `*/90` as `0`; cron would fire hourly, not every 90 min).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError
from cronsim.cronsim import Field


@dataclass(frozen=True)
class CronField:
    field: Field  # cronsim's parser of the field
    label: str
    high: int
    accepts: str


FIELDS = (
    CronField(Field.MINUTE, "minute", 59, "0-59"),
    CronField(Field.HOUR, "hour", 23, "0-23"),
    CronField(Field.DAY, "day of month", 31, "1-31"),
    CronField(Field.MONTH, "month", 12, "1-12 or jan-dec"),
    CronField(Field.DOW, "day of week", 7, "0-7 or sun-sat"),
)
FULL_DAYS = frozenset(range(1, 32))
FULL_WEEK = frozenset(range(7))
ONE_SECOND = timedelta(seconds=1)
MONDAY = datetime(2001, 1, 1, tzinfo=UTC)
GAPS_SAMPLED = 8


class CronError(ValueError):
    """An expression the system crontab would refuse or never fire; the message says why."""


@dataclass(frozen=True)
class CronSchedule:
    """When an expression fires: its ticks, and cronsim's parse of its fields (`fields`:
    the sets `minutes`, `hours`, `days`, `months`, `weekdays`).

    `days_either`: both day fields are restricted, so cron fires on a day that matches
    either of them (`0 0 1 * 1`: the 1st of the month, and every Monday). When either
    field starts with `*`, a day must match both."""

    expression: str
    fields: CronSim  # parsed only, never iterated: each walk below takes a fresh one

    @property
    def weekdays(self) -> frozenset[int]:
        """Sunday is 0 (cron's 7 is Sunday too)."""
        return frozenset(day % 7 for day in self.fields.weekdays)

    @property
    def days_either(self) -> bool:
        return not self.fields.day_and

    @property
    def every_day_of_month(self) -> bool:
        return self.fields.days == FULL_DAYS

    @property
    def every_weekday(self) -> bool:
        return self.weekdays == FULL_WEEK

    def ticks(self, after: datetime) -> Iterator[datetime]:
        """Every tick strictly after `after` (an aware datetime), in order, in UTC."""
        return CronSim(self.expression, after.astimezone(UTC))

    def next_tick(self, after: datetime) -> datetime:
        """The first tick strictly after `after` (an aware datetime), in UTC."""
        return _first(self.ticks(after))

    def latest_tick(self, at: datetime) -> datetime:
        """The last tick at or before `at` (an aware datetime), in UTC: the current tick.
        cronsim walks back from the whole second after `at`, so `at` itself counts."""
        start = at.astimezone(UTC).replace(microsecond=0) + ONE_SECOND
        return _first(CronSim(self.expression, start, reverse=True))

    def typical_gap(self) -> timedelta:
        """The gap between two consecutive ticks (`interval_seconds` of `task_info`): the
        shortest of the first gaps after a fixed Monday, where gaps vary (`*/25`: 10 min,
        from :50 to :00)."""
        ticks = self.ticks(MONDAY)
        first = _first(ticks)
        gaps = []
        for tick in (_first(ticks) for _ in range(GAPS_SAMPLED)):
            gaps.append(tick - first)
            first = tick
        return min(gaps)


def _first(ticks: Iterator[datetime]) -> datetime:
    """cronsim stops after 50 years without a tick; `parse()` refuses every expression
    that far apart (the rarest it takes, 29 February on a Sunday, is 40 years)."""
    for tick in ticks:
        return tick
    raise CronError("never fires within 50 years")


def parse(expression: str) -> CronSchedule:
    """The schedule of a five-field expression; CronError naming the bad field otherwise."""
    parts = str(expression).split()
    if parts and parts[0].startswith("@"):
        raise CronError(f"is a nickname ({parts[0]}); write five fields instead")
    if len(parts) != len(FIELDS):
        raise CronError(f"has {len(parts)} fields, not five (minute hour day month weekday)")
    for field, part in zip(FIELDS, parts, strict=True):
        _refuse_beyond_debian(field, part)
    try:
        fields = CronSim(" ".join(parts), MONDAY)
    except CronSimError:
        raise CronError("never fires: no chosen month has that day") from None
    return CronSchedule(" ".join(parts), fields)


def _refuse_beyond_debian(field: CronField, part: str) -> None:
    """CronError unless Debian's cron reads `part`: numbers and names, `*`, `a-b`, `/step`
    no longer than the field, lists; cronsim's `L`, `W` and `#` come out of its parse as
    markers (negative days, (weekday, n) pairs) and are refused here."""
    refused = f"{field.label} {part!r} is not {field.accepts}, *, a-b, a /step or a list of them"
    try:
        values = field.field.parse(part.upper())
    except CronSimError:
        raise CronError(refused) from None
    if any(not isinstance(value, int) or value < 0 for value in values):
        raise CronError(refused + " (L, W and # are not Debian cron's)")
    for term in part.split(","):
        _, slash, step = term.partition("/")
        if slash and int(step) > field.high:
            raise CronError(
                f"{field.label} step in {term!r} must be from 1 to {field.high} (a longer"
                " step would fire once per period, not at that gap)"
            )


def numeric(expression: str) -> str:
    """The expression with month and weekday names as numbers (`0 9 * * MON` ->
    `0 9 * * 1`), for schedulers that take numbers only (GitHub Actions, Vercel)."""
    parts = str(expression).split()
    for index in (3, 4):
        field = FIELDS[index].field
        parts[index] = re.sub(
            r"[A-Za-z]+", lambda name, field=field: str(field.int(name[0].upper())), parts[index]
        )
    return " ".join(parts)


def cron_escaped(text: str) -> str:
    """`text` as a crontab command must write it: every `%` as `\\%`. Cron reads a bare
    `%` in a command as a newline (the rest becomes the command's stdin); escaped, cron
    hands the shell the `%` unchanged."""
    return text.replace("%", "\\%")
