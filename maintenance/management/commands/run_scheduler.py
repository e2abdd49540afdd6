import signal
from typing import Any

from django.core.management.base import BaseCommand

from maintenance.triggers.scheduler import Scheduler


class Command(BaseCommand):
    help = (
        "Run the maintenance scheduler in the foreground, for a dedicated worker container "
        "(then set IN_PROCESS_SCHEDULER=false on the web servers). Safe beside cron, the web "
        "servers' schedulers and other workers: each wakes at its tasks' ticks, and a tick "
        "another trigger served or is serving is skipped. Stops cleanly on Ctrl-C or SIGTERM: a "
        "run in progress stops at its next batch or message and is recorded failed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        scheduler = Scheduler()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda signum, _: scheduler.stop(why=signal.Signals(signum).name))
        scheduler.run_forever()
