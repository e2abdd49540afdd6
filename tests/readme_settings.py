"""Settings for the README's command lines under test: the project's own settings, with
django-crontab pointed at a throwaway user's crontab (or at nothing), never at the crontab
of the user running the tests."""

import os

from pluggedin.settings import *  # noqa: F403

CRONTAB_EXECUTABLE = os.environ.get("PLUGGEDIN_TEST_CRONTAB_EXECUTABLE", "/bin/false")
