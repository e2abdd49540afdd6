"""Settings for the pluggedin maintenance project.

Every knob is an environment variable (django-environ); a `.env` file at the project root is
read when present, without overriding variables already in the environment. Defaults are
the safe ones: DEBUG off, task endpoints closed until CRON_SECRET is set.
"""

import importlib.util
import io
import json
import os
import re
import shlex
import sys
import warnings
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

import emails.conf  # noqa: F401 - declares its settings table, read below
import oauth.conf  # noqa: F401 - declares its settings table, read below
from maintenance.conf import PROJECT_SETTINGS, TASK_SETTING_NAME, Setting, app_settings
from maintenance.envfile import without_inline_comments
from maintenance.schedules.cron import cron_escaped
from maintenance.triggers.cronjobs import DeclaredCronJobs

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
_ENV_FILE = os.environ.get("PLUGGEDIN_ENV_FILE", str(BASE_DIR / ".env"))
if _ENV_FILE and Path(_ENV_FILE).is_file():
    # `KEY=value  # note` means `value`, as in a shell or Docker Compose: django-environ
    # alone would keep the note as part of the value (a CRON_SECRET no client sends).
    env.read_env(io.StringIO(without_inline_comments(Path(_ENV_FILE).read_text())))

# Every value read here is parsed strictly: one that cannot be parsed stops the process
# with one line naming the variable and what it accepts (manage.py prints it as
# `Configuration error: ...`). Ranges are the system checks' job (maintenance/checks.py).
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


def _flag(raw: str) -> bool:
    if raw.strip().lower() not in _TRUE + _FALSE:
        raise ValueError
    return raw.strip().lower() in _TRUE


_CASTS = {bool: _flag, int: lambda raw: int(raw.strip()), float: float, str: str}
_ACCEPTS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _env_value(name: str, kind: type, default=None):
    """Variable `name` parsed as `kind`; `default` when unset or empty."""
    raw = env.ENVIRON.get(name, "")
    if not raw.strip():
        return default
    try:
        return _CASTS[kind](raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} is {raw!r}: set it to {_ACCEPTS[kind]}.") from None


def _plumbing(name: str) -> str:
    """A text setting of the project's own (PROJECT_SETTINGS), with its declared default."""
    return env.str(name, default=PROJECT_SETTINGS[name].default)


DEBUG = _env_value("DEBUG", bool, default=PROJECT_SETTINGS["DEBUG"].default)

SECRET_KEY = _plumbing("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY (or DEBUG=true for local development)."
        )
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

# --- TLS and a proxy in front (Django's own settings, Django's defaults when unset) ---
# Behind a TLS-terminating proxy: SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https and
# CSRF_TRUSTED_ORIGINS=https://host (admin POSTs), the secure flags and HSTS to clear
# `check --deploy`. SECRET_KEY_FALLBACKS keeps links signed with a rotated-out key working.
_PROXY_SSL_HEADER = re.compile(r"(HTTP_[A-Z0-9_]+),([^\s,]+)")


def _proxy_ssl_header() -> tuple[str, str] | None:
    raw = env.ENVIRON.get("SECURE_PROXY_SSL_HEADER", "").strip()
    if not raw:
        return None
    match = _PROXY_SSL_HEADER.fullmatch(raw.replace(" ", ""))
    if not match:
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER is {raw!r}: set it to the request header and the value "
            "that mean https, comma-separated, e.g. HTTP_X_FORWARDED_PROTO,https."
        )
    return match[1], match[2]


def _declared(name: str):
    """A setting of PROJECT_SETTINGS parsed as the type of its declared default."""
    default = PROJECT_SETTINGS[name].default
    return _env_value(name, type(default), default=default)


CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header()
SECURE_SSL_REDIRECT = _declared("SECURE_SSL_REDIRECT")
SESSION_COOKIE_SECURE = _declared("SESSION_COOKIE_SECURE")
CSRF_COOKIE_SECURE = _declared("CSRF_COOKIE_SECURE")
SECURE_HSTS_SECONDS = _declared("SECURE_HSTS_SECONDS")
SECURE_HSTS_INCLUDE_SUBDOMAINS = _declared("SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = _declared("SECURE_HSTS_PRELOAD")
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_crontab",
    "anymail",
    "maintenance",
    "emails",  # before oauth, so run_maintenance ends with the hourly session cleanup
    "oauth",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pluggedin.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "pluggedin.wsgi.application"
ASGI_APPLICATION = "pluggedin.asgi.application"


def _importable(module: str) -> bool:
    try:
        return bool(module) and importlib.util.find_spec(module) is not None
    except ImportError:
        return False


# The driver each database engine imports; its absence would otherwise surface as a
# traceback from deep inside the first model import.
_DRIVERS = {
    "django.db.backends.postgresql": ("psycopg", "psycopg2"),
    "django.db.backends.mysql": ("MySQLdb",),
    "django.db.backends.oracle": ("oracledb", "cx_Oracle"),
}


def _database() -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unknown scheme is reported below, once
            config = env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
    except Exception as exc:  # django-environ raises several types for a bad URL
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc
    if not _importable(config.get("ENGINE", "")):
        raise ImproperlyConfigured(
            "DATABASE_URL names an unsupported database scheme: use postgres://user:pass@host"
            ":5432/db or sqlite:///path."
        )
    drivers = _DRIVERS.get(config["ENGINE"], ())
    if drivers and not any(_importable(driver) for driver in drivers):
        raise ImproperlyConfigured(
            f"DATABASE_URL needs the database driver {' or '.join(drivers)}, which is not "
            "installed: install it, or use another DATABASE_URL."
        )
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # A relative path means the project directory, not the working directory: cron
        # runs its jobs from $HOME and would otherwise open (and create) another file.
        if config["NAME"] and config["NAME"] != ":memory:":
            config["NAME"] = str(BASE_DIR / config["NAME"])
        # Several runners (cron, HTTP, scheduler) share one file: wait for the write lock
        # instead of failing, and take it up front so transactions never deadlock.
        config.setdefault("OPTIONS", {}).update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
    if config["ENGINE"] == "django.db.backends.postgresql":
        # Server-side cursors (`.iterator()`) outlive a transaction, which a transaction-mode
        # pooler (PgBouncer, Supabase, Neon) does not allow; off everywhere, nothing to set.
        config["DISABLE_SERVER_SIDE_CURSORS"] = True
    return config


DATABASES = {"default": _database()}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Maintenance tasks -------------------------------------------------------------------
# Only the environment's values: each setting (its variable, type, default, meaning, the
# values it accepts) is declared once, in the table of the app that reads it
# (maintenance/conf.py, emails/conf.py, oauth/conf.py), and documented in .env.example.
# An unset variable leaves the setting undefined, so the app's default applies.


def _env_settings(table: dict[str, Setting]) -> dict:
    """The variables of the settings read from the environment that are set and not empty
    (`CRON_SECRET=` means unset), parsed as each setting's `env` says."""
    given = {name: _env_value(name, s.env) for name, s in table.items() if s.env is not None}
    return {name: value for name, value in given.items() if value is not None}


vars().update(_env_settings(app_settings()))
if "APP_URL" in vars():
    APP_URL = APP_URL.strip().rstrip("/")  # noqa: F821

# Each declared task's own settings, whatever the task: <TASK>_CRON,
# <TASK>_STARTING_DEADLINE_SECONDS and <TASK>_HEARTBEAT_URL (e.g. PKCE_CLEANUP_CRON). The
# system checks refuse values that cannot work, and the retired <TASK>_INTERVAL_SECONDS.
vars().update(
    {
        name: value
        for name, value in env.ENVIRON.items()
        if TASK_SETTING_NAME.fullmatch(name) and value.strip()
    }
)

# --- System crontab (django-crontab): python manage.py crontab add|show|remove ---
# One entry per declared task, on its schedule in force. Each job runs
# `manage.py crontab run <hash>` with this project's interpreter and settings; cron's bare
# environment gets DATABASE_URL, CRON_SECRET and the rest from the `.env` file above,
# never from the installing shell.
CRONJOBS = DeclaredCronJobs()
CRONTAB_PYTHON_EXECUTABLE = env.str("CRONTAB_PYTHON_EXECUTABLE", default=sys.executable)
CRONTAB_DJANGO_MANAGE_PATH = str(BASE_DIR / "manage.py")
CRONTAB_COMMENT = _plumbing("CRONTAB_COMMENT")
CRONTAB_COMMAND_PREFIX = cron_escaped(_plumbing("CRONTAB_COMMAND_PREFIX"))
# The crontab command django-crontab reads and writes, e.g. `crontab -u app` (run as root)
# to install the entries in the crontab of the user who should run them.
CRONTAB_EXECUTABLE = _plumbing("CRONTAB_EXECUTABLE")
# A relative CRON_LOG_FILE is under BASE_DIR (cron's working directory is $HOME); its
# folder is created by `manage.py crontab add`.
CRON_LOG_FILE = str(BASE_DIR / _plumbing("CRON_LOG_FILE"))
CRONTAB_COMMAND_SUFFIX = f">> {cron_escaped(shlex.quote(CRON_LOG_FILE))} 2>&1"
ENV_FILE = _ENV_FILE

# --- Email ---


def _email_config() -> dict:
    try:
        return env.email_url("EMAIL_URL", default=PROJECT_SETTINGS["EMAIL_URL"].default)
    except Exception as exc:  # the URL may hold a password: name the problem, not the URL
        raise ImproperlyConfigured(
            f"EMAIL_URL is not a valid email URL ({type(exc).__name__}): use "
            "consolemail://, smtp://user:pass@host:587/?tls=True or smtp+ssl://user:pass@host:465."
        ) from None


EMAIL_CONFIG = _email_config()
vars().update(EMAIL_CONFIG)
# Django's own default is None: a silent SMTP server would hold a message, and its run,
# forever. The declared default applies unless EMAIL_TIMEOUT is in the environment.
if "EMAIL_TIMEOUT" not in vars():
    EMAIL_TIMEOUT = app_settings()["EMAIL_TIMEOUT"].default
DEFAULT_FROM_EMAIL = _plumbing("DEFAULT_FROM_EMAIL")

# An ESP's HTTP API instead of SMTP: EMAIL_BACKEND names any Django or anymail backend
# (anymail.backends.postmark.EmailBackend, ...amazon_ses..., ...resend..., ...mailgun...)
# and wins over the backend EMAIL_URL implies.
if env.ENVIRON.get("EMAIL_BACKEND", "").strip():
    EMAIL_BACKEND = env.str("EMAIL_BACKEND").strip()
    if not _importable(EMAIL_BACKEND.rpartition(".")[0]):
        raise ImproperlyConfigured(
            f"EMAIL_BACKEND={EMAIL_BACKEND!r} cannot be imported: give a Django or anymail "
            "backend path, e.g. anymail.backends.postmark.EmailBackend."
        )

# Anymail's settings, as anymail names them: ANYMAIL_<NAME> (e.g. ANYMAIL_WEBHOOK_SECRET)
# is ANYMAIL["<NAME>"], and the documented ESPs' own names need no prefix
# (POSTMARK_SERVER_TOKEN, AMAZON_SES_CONFIGURATION_SET_NAME, RESEND_API_KEY,
# MAILGUN_API_KEY, MAILGUN_SENDER_DOMAIN, ...). Values starting with { or [ are JSON
# (AMAZON_SES_CLIENT_PARAMS), true/false are booleans. Amazon SES credentials come from
# boto3's own AWS_* variables or the instance role.
ANYMAIL_VARIABLE = re.compile(
    r"ANYMAIL_(?P<prefixed>[A-Z0-9_]+)|(?P<bare>(?:POSTMARK|AMAZON_SES|RESEND|MAILGUN)_[A-Z0-9_]+)"
)


def _anymail_value(variable: str, value: str):
    if value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{variable} is not valid JSON: {exc}.") from None
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _anymail() -> dict:
    found = {}
    for variable, value in env.ENVIRON.items():
        match = ANYMAIL_VARIABLE.fullmatch(variable)
        if match and value.strip():
            found[match["prefixed"] or match["bare"]] = _anymail_value(variable, value.strip())
    secret = found.get("WEBHOOK_SECRET")
    if secret is not None and not (isinstance(secret, str) and ":" in secret):
        raise ImproperlyConfigured(
            "ANYMAIL_WEBHOOK_SECRET must be user:password (HTTP basic auth for the webhooks)."
        )
    return found


_ANYMAIL = _anymail()
if _ANYMAIL:
    ANYMAIL = _ANYMAIL


# --- Sentry (errors, and Crons check-ins for every task run: maintenance/observe/checkins.py) ---
# Off unless SENTRY_DSN is set. Default PII scrubbing; no performance tracing.
SENTRY_DSN = _plumbing("SENTRY_DSN").strip()
if SENTRY_DSN:
    import sentry_sdk

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        environment=_plumbing("SENTRY_ENVIRONMENT") or None,
        send_default_pii=False,
    )

# --- Logging ---

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_LEVEL = _plumbing("LOG_LEVEL").strip().upper()
if LOG_LEVEL not in _LOG_LEVELS:
    raise ImproperlyConfigured(
        f"LOG_LEVEL is {LOG_LEVEL!r}: set it to one of {', '.join(_LOG_LEVELS)}."
    )
# `plain` (one key=value line per event) or `json` (one JSON object per line).
LOG_FORMAT = _plumbing("LOG_FORMAT").strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'plain' or 'json', not {LOG_FORMAT!r}.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "maintenance.logs.log_format.JsonFormatter"},
    },
    "filters": {
        "redact_secrets": {"()": "maintenance.logs.redaction.RedactSecretsFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "maintenance": {"level": LOG_LEVEL},
        "oauth": {"level": LOG_LEVEL},
        "emails": {"level": LOG_LEVEL},
    },
}
