#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

A bad setting stops every command before it runs, with one line
(`Configuration error: <VARIABLE> is ...: set it to <what it accepts>`) and exit status 1:
values that cannot be parsed when the settings load, values out of range once the apps are
loaded (the system checks tagged `settings`, which task commands would otherwise skip to
keep cron output clean). `check` lists every problem with its hint instead; `--traceback`
shows the traceback.
"""

import os
import sys

# Commands that report bad settings themselves or need none.
REPORTING_COMMANDS = ("check", "help")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pluggedin.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        refuse_bad_settings(sys.argv[1:2])
    except ImproperlyConfigured as exc:
        if "--traceback" in sys.argv:
            raise
        sys.stderr.write(f"Configuration error: {' '.join(str(exc).split())}\n")
        sys.exit(1)
    execute_from_command_line(sys.argv)


def refuse_bad_settings(command: list[str]) -> None:
    import django
    from django.conf import settings

    settings.INSTALLED_APPS  # noqa: B018 - load the settings now to report a bad one
    if not command or command[0] in REPORTING_COMMANDS or command[0].startswith("-"):
        return
    django.setup()
    from maintenance.checks.settings import refuse_bad_settings as refuse

    refuse()


if __name__ == "__main__":
    main()
