"""The system crontab: the lines `python manage.py crontab add` installs.

They come from django-crontab itself (its line format, job hashes, interpreter, manage.py
path, command prefix and log suffix), over `CRONJOBS`, which lists the declared tasks on
their schedules in force; so this export and an installed crontab cannot disagree.
"""

from __future__ import annotations

from django_crontab.crontab import Crontab

from maintenance.registry import Task
from maintenance.schedules.base import Export, ExportFile, ExportOptions, schedule_of

FILE_NAME = "maintenance.crontab"


def export(tasks: list[Task], options: ExportOptions) -> Export:
    for task in tasks:
        schedule_of(task)
    crontab = Crontab(verbosity=0, readonly=True)
    crontab.crontab_lines = []
    crontab.add_jobs()
    lines = [line.rstrip("\n") for line in crontab.crontab_lines]
    return Export([ExportFile(FILE_NAME, "\n".join(lines) + "\n")])
