"""Test settings: the project's settings, hermetic (no `.env`, no scheduler, fast hashing)."""

import hashlib
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
else:
    # Derived from the checkout's path, so two checkouts testing on one server never share
    # (and drop) each other's test database.
    _checkout = hashlib.blake2b(str(BASE_DIR).encode(), digest_size=4).hexdigest()  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": f"test_pluggedin_{_checkout}"}  # noqa: F405
