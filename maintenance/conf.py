"""Settings objects in the style of django-oauth-toolkit's `oauth2_settings`.

Each app keeps one table of its settings, and each setting is declared there once: its
name (the Django setting and the environment variable), how the variable's text is parsed
(`env`), its default (written once, here, never again in a module that reads it), a
one-line meaning, the values it accepts, whether it is secret and whether a cron job must
see it. Modules read `maintenance_settings.CRON_SECRET`, never
`getattr(settings, NAME, default)`. Values are cached and dropped on `setting_changed`, so
`override_settings` works in tests. `pluggedin/settings.py` maps the environment onto the
tables; the redaction filter and the cron check (W201) read `secret` and `cron` from them.
This module imports nothing that needs the apps loaded, so the settings can import it.

A task's own settings (`<TASK>_CRON`, `<TASK>_STARTING_DEADLINE_SECONDS`,
`<TASK>_MAX_RUNTIME_SECONDS`, `<TASK>_HEARTBEAT_URL`) are named after the task, so any
declared task has them without a line here: `task_setting()` is the one place that builds
those names, and `task_seconds()` the one place that parses the durations among them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.signals import setting_changed

# INTERVAL_SECONDS is retired (E002 names it) but still read, so the check can see it.
TASK_SETTING_SUFFIXES = (
    "CRON",
    "STARTING_DEADLINE_SECONDS",
    "MAX_RUNTIME_SECONDS",
    "HEARTBEAT_URL",
    "INTERVAL_SECONDS",
)
TASK_SETTING_NAME = re.compile(rf"[A-Z][A-Z0-9_]*_({'|'.join(TASK_SETTING_SUFFIXES)})")


@dataclass(frozen=True)
class Setting:
    """One setting: its default, a one-line meaning, and what it accepts.

    `check` returns None for an acceptable value, else the accepted values in words; the
    system checks (`maintenance.E0xx`) report every unacceptable one by name. A `secret`
    value is never repeated in a message, and the log filter removes it from every line.
    `env` is how the environment variable of the same name is parsed (bool, int, float or
    str); None: not read from the environment. `cron`: a cron job's run depends on it, so
    the value must be in the `.env` file, not only in the shell (check W201)."""

    default: Any
    doc: str
    check: Callable[[Any], str | None] | None = None
    secret: bool = False
    env: type | None = None
    cron: bool = False

    def problem(self, value: Any) -> str | None:
        return self.check(value) if self.check else None


# Every count and duration fits PostgreSQL's integer, a SQL LIMIT and a timedelta.
LARGEST_NUMBER = 2**31 - 1
MIN_TASK_SECONDS = 1  # a task's starting deadline or run time (task_seconds)


def whole_number(minimum: int, maximum: int = LARGEST_NUMBER) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum
        return None if ok else f"a whole number from {minimum} to {maximum}"

    return check


def positive_number(value: Any) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and 0 < value <= LARGEST_NUMBER
    return None if ok else f"a number greater than 0 and at most {LARGEST_NUMBER}"


def web_url(value: Any) -> str | None:
    """An absolute http(s) URL with a host and nothing a link or a request would mangle."""
    accepted = "an absolute http:// or https:// URL with a host, without spaces"
    if not isinstance(value, str) or not value.isprintable() or any(c.isspace() for c in value):
        return accepted
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return accepted
    return None if parts.scheme in ("http", "https") and parts.hostname else accepted


def url_per_task(value: Any) -> str | None:
    accepted = "a mapping of task names to absolute http:// or https:// URLs"
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return accepted
    ok = all(isinstance(name, str) and web_url(url) is None for name, url in value.items())
    return None if ok else accepted


def header_token(value: Any) -> str | None:
    """A secret a client can send as `Authorization: Bearer <secret>`: printable ASCII
    without whitespace (servers decode headers as latin-1 and trim spaces, so anything else
    never compares equal), or unset."""
    if value in (None, ""):
        return None
    ok = isinstance(value, str) and all("!" <= c <= "~" for c in value)
    return (
        None if ok else "printable ASCII without spaces (e.g. secrets.token_urlsafe(32)), or unset"
    )


def unset_or(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    """A setting that may also be left unset (None), e.g. to fall back on a default."""
    return lambda value: None if value is None else check(value)


def one_of(*choices: Any) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


# Every app's table, in the order the apps declare them (each AppSettings adds its own).
_TABLES: list[Mapping[str, Setting]] = []


class AppSettings:
    """Attribute access to one app's settings table; an unknown name is an error."""

    def __init__(self, table: Mapping[str, Setting]) -> None:
        self.table = dict(table)
        _TABLES.append(self.table)
        self._cache: dict[str, Any] = {}
        setting_changed.connect(self._on_setting_changed, weak=False)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.table:
            raise AttributeError(f"{name!r} is not a setting of this app")
        if name not in self._cache:
            self._cache[name] = getattr(django_settings, name, self.table[name].default)
        return self._cache[name]

    def problems(self) -> list[tuple[str, str | None, str]]:
        """(name, the value as a message may show it, what it accepts) for every value its
        table refuses; a secret's value shows as None, never as itself."""
        found = []
        for name, setting in self.table.items():
            value = getattr(self, name)
            accepted = setting.problem(value)
            if accepted:
                found.append((name, None if setting.secret else repr(value), accepted))
        return found

    def _on_setting_changed(self, *, setting: str, **kwargs: Any) -> None:
        if setting in self.table:
            self._cache.pop(setting, None)


def app_settings() -> dict[str, Setting]:
    """Every app's declared setting, by name (the tables the settings module imported)."""
    return {name: setting for table in _TABLES for name, setting in table.items()}


def declared_settings() -> dict[str, Setting]:
    """Every declared setting: the apps' and the project's plumbing (PROJECT_SETTINGS)."""
    return {**PROJECT_SETTINGS, **app_settings()}


def task_setting(task_name: str, suffix: str) -> Any:
    """The value of `<TASK>_<SUFFIX>` (e.g. `PKCE_CLEANUP_CRON`), or None when unset."""
    if suffix not in TASK_SETTING_SUFFIXES:
        raise ValueError(f"{suffix!r} is not a per-task setting ({TASK_SETTING_SUFFIXES})")
    value = getattr(django_settings, f"{task_name.upper()}_{suffix}", None)
    return None if value in (None, "") else value


def task_seconds(task_name: str, suffix: str) -> float | None:
    """`<TASK>_STARTING_DEADLINE_SECONDS` or `<TASK>_MAX_RUNTIME_SECONDS` as every reader
    takes it, the system check included: None when unset, else a number of seconds from
    MIN_TASK_SECONDS to LARGEST_NUMBER, fractions allowed (`90.5`, as the environment
    gives it). ValueError for any other value, so what `check` accepts every command reads
    alike."""
    value = task_setting(task_name, suffix)
    if value is None:
        return None
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not MIN_TASK_SECONDS <= seconds <= LARGEST_NUMBER:  # nan compares false
        raise ValueError(f"a number of seconds from {MIN_TASK_SECONDS} to {LARGEST_NUMBER}")
    return seconds


def shown_seconds(seconds: float) -> str:
    """A number of seconds as an operator wrote it: `30`, `90.5`."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


maintenance_settings = AppSettings(
    {
        "CRON_SECRET": Setting(
            None,
            "Bearer secret of the task and status endpoints; unset closes them (503).",
            header_token,
            secret=True,
            env=str,
            cron=True,
        ),
        "IN_PROCESS_SCHEDULER": Setting(
            True,
            "Start the in-process scheduler in each serving process.",
            one_of(True, False),
            env=bool,
        ),
        "MAINTENANCE_DELETE_BATCH_SIZE": Setting(
            10_000,
            "Rows deleted per batch, each its own short transaction.",
            whole_number(1),
            env=int,
            cron=True,
        ),
        "MAINTENANCE_LOCK_LEASE_SECONDS": Setting(
            60,
            "Lease of a running run on its row (database clock), renewed every third of it "
            "while the run lives; a dead runner's run lapses within it.",
            whole_number(1),
            env=int,
        ),
        "MAINTENANCE_RUN_RETENTION_DAYS": Setting(
            30,
            "Run-log rows older than this are pruned by the runs; 0 keeps all.",
            whole_number(0),
            env=int,
        ),
        "MAINTENANCE_RUN_PRUNE_INTERVAL_SECONDS": Setting(
            3600, "How often one process may prune the run log.", whole_number(1)
        ),
        "MAINTENANCE_HTTP_BUDGET_SECONDS": Setting(
            25.0,
            "How long an HTTP-triggered run may go on before it stops and answers 200 with "
            "what it did; keep it under the web server's worker timeout (gunicorn: 30 s).",
            positive_number,
            env=float,
        ),
        "MAINTENANCE_HEARTBEAT_URLS": Setting(
            {},
            "Heartbeat ping URL per task name, besides <TASK>_HEARTBEAT_URL.",
            url_per_task,
            secret=True,
        ),
        "MAINTENANCE_HEARTBEAT_TIMEOUT_SECONDS": Setting(
            5.0,
            "Timeout of one heartbeat ping.",
            positive_number,
            env=float,
        ),
        "ENV_FILE": Setting("", "The .env file the settings read (what cron jobs see)."),
        "METRICS_TOKEN": Setting(
            None,
            "Bearer secret of GET /metrics; unset falls back to CRON_SECRET.",
            header_token,
            secret=True,
            env=str,
        ),
        "MAINTENANCE_BACKLOG_EXACT_LIMIT": Setting(
            10_000,
            "Backlogs are counted exactly up to this many rows; past it, PostgreSQL's "
            "planner estimate (other databases: the limit).",
            whole_number(1),
            env=int,
        ),
        "SENTRY_CHECKIN_MARGIN_MINUTES": Setting(
            None,
            "Sentry Crons checkin_margin of every task; unset: the gap between two of its ticks.",
            unset_or(whole_number(1, 40_320)),
            env=int,
        ),
    }
)


# The project's plumbing: Django's own settings and django-crontab's, anymail's and
# Sentry's. `pluggedin/settings.py` parses these itself (URLs, lists, derived values), with
# these defaults; they are declared here once so the log filter knows which are secret and
# the cron check which a cron job must see. None as a default: settings.py derives it.
PROJECT_SETTINGS: dict[str, Setting] = {
    "DEBUG": Setting(False, "Development mode; never true in production.", env=bool),
    "DATABASE_URL": Setting(
        None, "Django database URL; default: db.sqlite3 in the project.", env=str, cron=True
    ),
    "SECRET_KEY": Setting(
        "", "Django's signing key; required unless DEBUG.", secret=True, env=str, cron=True
    ),
    "ALLOWED_HOSTS": Setting(None, "Hosts this server answers to, comma-separated.", env=str),
    # Django's TLS and proxy settings, with Django's own defaults (docs: README).
    "CSRF_TRUSTED_ORIGINS": Setting([], "Origins trusted for unsafe requests.", env=str),
    "SECURE_PROXY_SSL_HEADER": Setting(None, "Header,value meaning https.", env=str),
    "SECURE_SSL_REDIRECT": Setting(False, "Redirect http to https.", env=bool),
    "SESSION_COOKIE_SECURE": Setting(False, "Session cookie over https only.", env=bool),
    "CSRF_COOKIE_SECURE": Setting(False, "CSRF cookie over https only.", env=bool),
    "SECURE_HSTS_SECONDS": Setting(0, "Strict-Transport-Security max-age.", env=int),
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": Setting(False, "HSTS includeSubDomains.", env=bool),
    "SECURE_HSTS_PRELOAD": Setting(False, "HSTS preload.", env=bool),
    "SECRET_KEY_FALLBACKS": Setting(
        [], "Retired SECRET_KEYs still accepted by signatures.", secret=True, env=str
    ),
    "EMAIL_URL": Setting("consolemail://", "django-environ email URL.", env=str, cron=True),
    "EMAIL_HOST_PASSWORD": Setting(None, "The password in EMAIL_URL.", secret=True),
    "DEFAULT_FROM_EMAIL": Setting(
        "Plugged.in <noreply@localhost>", "Sender of onboarding emails.", env=str, cron=True
    ),
    "EMAIL_BACKEND": Setting(None, "An ESP's backend path; wins over EMAIL_URL's.", env=str),
    "ANYMAIL_WEBHOOK_SECRET": Setting(
        None, "user:password of the ESP webhooks.", secret=True, env=str
    ),
    "POSTMARK_SERVER_TOKEN": Setting(None, "Postmark's API token.", secret=True, env=str),
    "RESEND_API_KEY": Setting(None, "Resend's API key.", secret=True, env=str),
    "RESEND_SIGNING_SECRET": Setting(
        None, "Resend's webhook signing secret.", secret=True, env=str
    ),
    "MAILGUN_API_KEY": Setting(None, "Mailgun's API key.", secret=True, env=str),
    "MAILGUN_WEBHOOK_SIGNING_KEY": Setting(
        None, "Mailgun's webhook signing key.", secret=True, env=str
    ),
    "CRON_LOG_FILE": Setting(
        "logs/cron.log", "Where crontab entries append their output.", env=str
    ),
    "CRONTAB_COMMENT": Setting(
        "pluggedin maintenance", "Marks this project's crontab lines.", env=str
    ),
    "CRONTAB_EXECUTABLE": Setting("/usr/bin/crontab", "The crontab command.", env=str),
    "CRONTAB_PYTHON_EXECUTABLE": Setting(
        None, "Interpreter of the entries; default: this one.", env=str
    ),
    "CRONTAB_COMMAND_PREFIX": Setting("", "Prepended to each entry's command.", env=str),
    "SENTRY_DSN": Setting(
        "", "Sentry errors and Crons check-ins; empty: off.", secret=True, env=str
    ),
    "SENTRY_ENVIRONMENT": Setting("", "Sentry environment name.", env=str),
    "LOG_LEVEL": Setting("INFO", "Level of the project's loggers.", env=str),
    "LOG_FORMAT": Setting("plain", "plain or json log lines.", env=str),
}
