"""Compare the installed crontab with CRONJOBS, through django-crontab itself.

The installed lines are read with the same `CRONTAB_EXECUTABLE -l` django-crontab uses;
the expected lines come from django-crontab's own `add_jobs` (same hashing, same line
format, same python and manage.py paths), so any difference means `crontab add` would
write something other than what is installed.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass

from django_crontab.crontab import Crontab


@dataclass(frozen=True)
class CrontabDrift:
    installed: frozenset[str]
    expected: frozenset[str]

    @property
    def in_sync(self) -> bool:
        return self.installed == self.expected


def crontab_drift() -> CrontabDrift | None:
    """The project's installed and expected crontab lines; None when crontab can't be read."""
    crontab = Crontab(verbosity=0, readonly=True)
    lines = installed_lines(crontab.settings.CRONTAB_EXECUTABLE)
    if lines is None:
        return None
    comment = crontab.settings.CRONTAB_COMMENT
    installed = [line for line in lines if _is_ours(crontab, line, comment)]
    crontab.crontab_lines = []
    crontab.add_jobs()
    return CrontabDrift(
        installed=frozenset(line.strip() for line in installed),
        expected=frozenset(line.strip() for line in crontab.crontab_lines),
    )


def installed_lines(executable: str) -> list[str] | None:
    """`crontab -l` as django-crontab runs it, but quietly: a check runs with every
    `manage.py` command, so "no crontab for user" or a missing binary must not reach the
    terminal. None when the binary is missing or does not answer."""
    argv = shlex.split(executable)
    if not argv or not shutil.which(argv[0]):
        return None
    try:
        listed = subprocess.run(
            [*argv, "-l"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return listed.stdout.splitlines(keepends=True) if listed.returncode == 0 else []


def _is_ours(crontab: Crontab, line: str, comment: str) -> bool:
    job = crontab.settings.CRONTAB_LINE_REGEXP.findall(line)
    return bool(job) and job[0][4] == comment
