"""Test settings: the project's settings, hermetic (no `.env`, no scheduler, fast hashing)."""

import os

os.environ["PLUGGEDIN_ENV_FILE"] = ""
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789")

from pluggedin.settings import *  # noqa: F403

IN_PROCESS_SCHEDULER = False
CRON_SECRET = None
CLOUD_DEPLOY = False
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not memory, so subprocesses started by tests see the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test_db.sqlite3")}  # noqa: F405
