"""Settings for the pluggedin maintenance project.

Every knob is an environment variable (django-environ); a `.env` file at the project root is
read when present, without overriding variables already in the environment. Defaults are
the safe ones: DEBUG off, task endpoints closed until CRON_SECRET is set.
"""

import contextlib
import importlib.util
import os
import shlex
import sys
import warnings
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
_ENV_FILE = os.environ.get("PLUGGEDIN_ENV_FILE", str(BASE_DIR / ".env"))
if _ENV_FILE and Path(_ENV_FILE).is_file():
    env.read_env(_ENV_FILE)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY (or DEBUG=true for local development)."
        )
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_crontab",
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


def _database() -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unknown scheme is reported below, once
            config = env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
    except Exception as exc:  # django-environ raises several types for a bad URL
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc
    if not _importable(config.get("ENGINE", "")):
        raise ImproperlyConfigured("DATABASE_URL names an unsupported database scheme.")
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # A relative path means the project directory, not the working directory: cron
        # runs its jobs from $HOME and would otherwise open (and create) another file.
        if config["NAME"] and config["NAME"] != ":memory:":
            config["NAME"] = str(BASE_DIR / config["NAME"])
        # Several runners (cron, HTTP, scheduler) share one file: wait for the write lock
        # instead of failing, and take it up front so transactions never deadlock.
        config.setdefault("OPTIONS", {}).update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
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

# --- Maintenance tasks (see README "Configuration"; defaults documented in .env.example) ---

CRON_SECRET = env.str("CRON_SECRET", default="") or None
CLOUD_DEPLOY = env.bool("CLOUD_DEPLOY", default=False)
ENABLE_WELCOME_EMAILS = env.bool("ENABLE_WELCOME_EMAILS", default=True)
APP_URL = env.str("APP_URL", default="http://localhost:8000").rstrip("/")

IN_PROCESS_SCHEDULER = env.bool("IN_PROCESS_SCHEDULER", default=True)

PKCE_STATE_TTL_SECONDS = env.int("PKCE_STATE_TTL_SECONDS", default=600)
OAUTH_SESSION_TTL_SECONDS = env.int("OAUTH_SESSION_TTL_SECONDS", default=900)

PKCE_CLEANUP_CRON = env.str("PKCE_CLEANUP_CRON", default="*/10 * * * *")
SCHEDULED_EMAILS_CRON = env.str("SCHEDULED_EMAILS_CRON", default="0 * * * *")
OAUTH_SESSION_CLEANUP_CRON = env.str("OAUTH_SESSION_CLEANUP_CRON", default="0 * * * *")

# In-process intervals; unset means the task's own (10 min, 1 h, 1 h). Short ones for tests.
PKCE_CLEANUP_INTERVAL_SECONDS = env.int("PKCE_CLEANUP_INTERVAL_SECONDS", default=None)
SCHEDULED_EMAILS_INTERVAL_SECONDS = env.int("SCHEDULED_EMAILS_INTERVAL_SECONDS", default=None)
OAUTH_SESSION_CLEANUP_INTERVAL_SECONDS = env.int(
    "OAUTH_SESSION_CLEANUP_INTERVAL_SECONDS", default=None
)

# --- System crontab (django-crontab): python manage.py crontab add|show|remove ---
# One entry per task, (task name, cron expression); tests/test_crontab.py checks the names
# against the task registry. Each job runs `manage.py crontab run <hash>` with this
# project's interpreter and settings; cron's bare environment gets DATABASE_URL,
# CRON_SECRET and the rest from the `.env` file above, never from the installing shell.
MAINTENANCE_CRON_TASKS = [
    ("pkce_cleanup", PKCE_CLEANUP_CRON),
    ("scheduled_emails", SCHEDULED_EMAILS_CRON),
    ("oauth_session_cleanup", OAUTH_SESSION_CLEANUP_CRON),
]
CRONJOBS = [
    (schedule, "maintenance.cron.run_task_from_cron", [name])
    for name, schedule in MAINTENANCE_CRON_TASKS
]
CRONTAB_PYTHON_EXECUTABLE = env.str("CRONTAB_PYTHON_EXECUTABLE", default=sys.executable)
CRONTAB_DJANGO_MANAGE_PATH = str(BASE_DIR / "manage.py")
CRONTAB_COMMENT = env.str("CRONTAB_COMMENT", default="pluggedin maintenance")
CRONTAB_COMMAND_PREFIX = env.str("CRONTAB_COMMAND_PREFIX", default="")
# A relative CRON_LOG_FILE is under BASE_DIR (cron's working directory is $HOME).
CRON_LOG_FILE = str(BASE_DIR / env.str("CRON_LOG_FILE", default="logs/cron.log"))
CRONTAB_COMMAND_SUFFIX = f">> {shlex.quote(CRON_LOG_FILE)} 2>&1"
with contextlib.suppress(OSError):  # cron's shell runs nothing if it cannot open the log
    Path(CRON_LOG_FILE).parent.mkdir(parents=True, exist_ok=True)
ENV_FILE = _ENV_FILE

MAINTENANCE_DELETE_BATCH_SIZE = env.int("MAINTENANCE_DELETE_BATCH_SIZE", default=10000)
MAINTENANCE_LOCK_LEASE_SECONDS = env.int("MAINTENANCE_LOCK_LEASE_SECONDS", default=900)

# Run-log rows older than this are pruned by the task runs themselves (0 keeps them all).
MAINTENANCE_RUN_RETENTION_DAYS = env.int("MAINTENANCE_RUN_RETENTION_DAYS", default=30)
MAINTENANCE_RUN_PRUNE_INTERVAL_SECONDS = 3600

# Optional healthchecks.io-style ping URLs per task (<url>/start, <url>, <url>/fail).
PKCE_CLEANUP_HEARTBEAT_URL = env.str("PKCE_CLEANUP_HEARTBEAT_URL", default="") or None
SCHEDULED_EMAILS_HEARTBEAT_URL = env.str("SCHEDULED_EMAILS_HEARTBEAT_URL", default="") or None
OAUTH_SESSION_CLEANUP_HEARTBEAT_URL = (
    env.str("OAUTH_SESSION_CLEANUP_HEARTBEAT_URL", default="") or None
)
MAINTENANCE_HEARTBEAT_URLS: dict[str, str] = {}
MAINTENANCE_HEARTBEAT_TIMEOUT_SECONDS = env.float(
    "MAINTENANCE_HEARTBEAT_TIMEOUT_SECONDS", default=5.0
)

# --- Email ---

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Plugged.in <noreply@localhost>")

# Onboarding email processing (see README "Onboarding emails").
SCHEDULED_EMAILS_MAX_ATTEMPTS = env.int("SCHEDULED_EMAILS_MAX_ATTEMPTS", default=5)
SCHEDULED_EMAILS_BACKOFF_SECONDS = env.int("SCHEDULED_EMAILS_BACKOFF_SECONDS", default=300)
SCHEDULED_EMAILS_MAX_LATENESS_HOURS = env.int("SCHEDULED_EMAILS_MAX_LATENESS_HOURS", default=48)
SCHEDULED_EMAILS_LEASE_SECONDS = env.int("SCHEDULED_EMAILS_LEASE_SECONDS", default=900)
SCHEDULED_EMAILS_BATCH_SIZE = env.int("SCHEDULED_EMAILS_BATCH_SIZE", default=100)
SCHEDULED_EMAILS_LIMIT = env.int("SCHEDULED_EMAILS_LIMIT", default=10000)
SCHEDULED_EMAILS_MAX_SECONDS = env.float("SCHEDULED_EMAILS_MAX_SECONDS", default=600)

# --- Logging ---

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# `plain` (one key=value line per event) or `json` (one JSON object per line).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain").lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'plain' or 'json', not {LOG_FORMAT!r}.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "maintenance.log_format.JsonFormatter"},
    },
    "filters": {
        "redact_secrets": {"()": "maintenance.redaction.RedactSecretsFilter"},
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
