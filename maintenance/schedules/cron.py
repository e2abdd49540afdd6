"""Five-field cron expressions as the system crontab reads them (Debian's cron).

`parse()` turns `*/10 * * * *` into the sets of minutes, hours, days, months and
weekdays it fires on, so an exporter can restate the schedule for a scheduler that speaks
another language (systemd's `OnCalendar=`) and refuse an expression no cron would run.
Fields take `*`, numbers, `a-b` ranges, `/step` on either, `,` lists, and English names
for months and weekdays (`JAN`, `mon`); day of week 0 and 7 are Sunday.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
MINUTE, DAY = timedelta(minutes=1), timedelta(days=1)
# A schedule that fires at all fires within 8 years and a day (29 February on a weekday).
SEARCH_DAYS = 8 * 366 + 1
GAPS_SAMPLED = 8
TERM = re.compile(r"(?:(?P<star>\*)|(?P<low>\w+)(?:-(?P<high>\w+))?)(?:/(?P<step>\d+))?")


class CronError(ValueError):
    """An expression the system crontab would refuse or never fire; the message says why."""


@dataclass(frozen=True)
class CronField:
    label: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is value i + name_base
    name_base: int = 0

    def values(self, text: str) -> frozenset[int]:
        found: set[int] = set()
        for term in text.split(","):
            found |= self.term_values(term)
        return frozenset(found)

    def term_values(self, term: str) -> set[int]:
        match = TERM.fullmatch(term)
        if not match:
            raise CronError(f"{self.label} {term!r} is not a value, range or step")
        if match["star"]:
            low, high = self.low, self.high
        else:
            low = self.number(match["low"])
            # `5/20` means from 5 to the end, as Debian's cron and Vixie's successors read it
            high = self.number(match["high"]) if match["high"] else low
            if match["step"] and not match["high"]:
                high = self.high
        if low > high:
            raise CronError(f"{self.label} range {term!r} runs backwards")
        step = int(match["step"] or 1)
        if not 1 <= step <= self.high:
            raise CronError(
                f"{self.label} step in {term!r} must be from 1 to {self.high} (a longer step"
                " would fire once per period, not at that gap)"
            )
        return set(range(low, high + 1, step))

    def number(self, token: str) -> int:
        if token.lower() in self.names:
            return self.names.index(token.lower()) + self.name_base
        if not token.isdigit():
            raise CronError(f"{self.label} {token!r} is not a number")
        value = int(token)
        if not self.low <= value <= self.high:
            raise CronError(f"{self.label} {value} is outside {self.low}-{self.high}")
        return value


FIELDS = (
    CronField("minute", 0, 59),
    CronField("hour", 0, 23),
    CronField("day of month", 1, 31),
    CronField("month", 1, 12, MONTH_NAMES, 1),
    CronField("day of week", 0, 7, WEEKDAY_NAMES, 0),
)


@dataclass(frozen=True)
class CronSchedule:
    """When an expression fires. `weekdays` counts Sunday as 0.

    `days_either`: both day fields are restricted, so cron fires on a day that matches
    either of them (`0 0 1 * 1`: the 1st of the month, and every Monday). When either
    field starts with `*`, a day must match both."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_either: bool

    @property
    def every_day_of_month(self) -> bool:
        return self.days == FULL_DAYS

    def fires_on(self, day: date) -> bool:
        """Whether any tick falls on `day` (Debian cron's rule for the two day fields)."""
        if day.month not in self.months:
            return False
        by_date, by_weekday = day.day in self.days, day.isoweekday() % 7 in self.weekdays
        return (by_date or by_weekday) if self.days_either else (by_date and by_weekday)

    def next_tick(self, after: datetime) -> datetime:
        """The first tick strictly after `after` (an aware datetime), in UTC."""
        moment = after.astimezone(UTC).replace(second=0, microsecond=0) + MINUTE
        day = moment.date()
        for _ in range(SEARCH_DAYS):
            if self.fires_on(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        tick = datetime.combine(day, time(hour, minute), UTC)
                        if tick >= moment:
                            return tick
            day += DAY
        raise CronError("never fires")  # parse() refuses such expressions

    def latest_tick(self, at: datetime) -> datetime:
        """The last tick at or before `at` (an aware datetime), in UTC: the current tick."""
        moment = at.astimezone(UTC)
        day = moment.date()
        for _ in range(SEARCH_DAYS):
            if self.fires_on(day):
                for hour in sorted(self.hours, reverse=True):
                    for minute in sorted(self.minutes, reverse=True):
                        tick = datetime.combine(day, time(hour, minute), UTC)
                        if tick <= moment:
                            return tick
            day -= DAY
        raise CronError("never fires")

    def ticks(self, after: datetime) -> Iterator[datetime]:
        """Every tick strictly after `after`, in order."""
        tick = self.next_tick(after)
        while True:
            yield tick
            tick = self.next_tick(tick)

    def gap_after(self, tick: datetime) -> timedelta:
        """How long from `tick` to the next one (the `late` tolerance is a tenth of it)."""
        return self.next_tick(tick) - tick

    def typical_gap(self) -> timedelta:
        """The gap between two consecutive ticks (`interval_seconds` of `task_info`): the
        shortest of the first gaps after a fixed Monday, where gaps vary (`*/25`: 10 min,
        from :50 to :00)."""
        ticks = self.ticks(datetime(2001, 1, 1, tzinfo=UTC))
        first = next(ticks)
        gaps = []
        for tick in (next(ticks) for _ in range(GAPS_SAMPLED)):
            gaps.append(tick - first)
            first = tick
        return min(gaps)

    @property
    def every_weekday(self) -> bool:
        return self.weekdays == FULL_WEEK


FULL_DAYS = frozenset(range(1, 32))
FULL_WEEK = frozenset(range(7))


def parse(expression: str) -> CronSchedule:
    """The schedule of a five-field expression; CronError naming the bad field otherwise."""
    parts = str(expression).split()
    if len(parts) != len(FIELDS):
        raise CronError(f"has {len(parts)} fields, not five (minute hour day month weekday)")
    minutes, hours, days, months, weekdays = (
        field.values(part) for field, part in zip(FIELDS, parts, strict=True)
    )
    weekdays = frozenset(day % 7 for day in weekdays)
    either = not parts[2].startswith("*") and not parts[4].startswith("*")
    if not either and min(days) > max(DAYS_IN_MONTH[month - 1] for month in months):
        raise CronError("never fires: no chosen month has that day")
    return CronSchedule(expression, minutes, hours, days, months, weekdays, either)


def numeric(expression: str) -> str:
    """The expression with month and weekday names as numbers (`0 9 * * MON` ->
    `0 9 * * 1`), for schedulers that take numbers only (GitHub Actions, Vercel)."""
    parts = str(expression).split()
    for index in (3, 4):
        field = FIELDS[index]
        parts[index] = re.sub(
            r"[A-Za-z]+", lambda name, field=field: str(field.number(name[0])), parts[index]
        )
    return " ".join(parts)
