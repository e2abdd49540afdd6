"""System checks for a maintenance deployment (`manage.py check`, `check --deploy`), by
topic as Django keeps its own: `security` (secrets), `settings` (values every entry point
refuses before it runs anything), `crontab` (the installed entries and what cron sees),
`pauses` (a pause nobody lifted). Each check is a module-level constant or id named by
its id, with a message that states the fact and a hint that gives the fix.

Importing this package registers them all (`MaintenanceConfig.ready()` does); the emails
and oauth apps keep their own `checks.py` and reuse `settings.setting_errors`.
"""

from maintenance.checks import crontab, pauses, security, settings
from maintenance.checks.settings import SETTINGS, configuration_error, setting_errors

__all__ = [
    "SETTINGS",
    "configuration_error",
    "crontab",
    "pauses",
    "security",
    "setting_errors",
    "settings",
]
