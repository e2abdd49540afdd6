"""Compare the installed crontab with CRONJOBS, through django-crontab itself.

The expected lines come from django-crontab's own `add_jobs` (same hashing, same line
format, same python and manage.py paths), so any difference means `crontab add` would
write something other than what is installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from django_crontab.crontab import Crontab


@dataclass(frozen=True)
class CrontabDrift:
    installed: frozenset[str]
    expected: frozenset[str]

    @property
    def in_sync(self) -> bool:
        return self.installed == self.expected

    @property
    def missing(self) -> frozenset[str]:
        return self.expected - self.installed

    @property
    def stale(self) -> frozenset[str]:
        return self.installed - self.expected


def crontab_drift() -> CrontabDrift | None:
    """The project's installed and expected crontab lines; None when crontab can't be read."""
    crontab = Crontab(verbosity=0, readonly=True)
    try:
        crontab.read()
    except OSError:
        return None
    comment = crontab.settings.CRONTAB_COMMENT
    installed = [line for line in crontab.crontab_lines if _is_ours(crontab, line, comment)]
    crontab.crontab_lines = []
    crontab.add_jobs()
    return CrontabDrift(
        installed=frozenset(line.strip() for line in installed),
        expected=frozenset(line.strip() for line in crontab.crontab_lines),
    )


def _is_ours(crontab: Crontab, line: str, comment: str) -> bool:
    job = crontab.settings.CRONTAB_LINE_REGEXP.findall(line)
    return bool(job) and job[0][4] == comment
