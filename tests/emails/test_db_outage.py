"""The database going away mid-run (every connection killed by the server): nothing lost."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from emails.models import ScheduledEmail
from maintenance.runs.runner import run_task
from tests import pgbouncer, processes
from tests.factories import make_due, statuses
from tests.processes import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LEASE_SECONDS = 3
LANES = 4


def terminate_other_sessions(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name NOT LIKE 'pytest%%'"
        )


@pytest.mark.postgres
def test_database_outage_mid_batch_loses_nothing(smtp_server, settings):
    settings.CLOUD_DEPLOY = True
    make_due(60)
    url = processes.test_database_url()
    connection.close()  # the test's own session comes back after the outage

    def outage(count: int) -> None:
        if count == 20:
            terminate_other_sessions(url)

    smtp_server.recorder.before_reply = outage
    done = processes.run_manage(
        "process_scheduled_emails",
        CLOUD_DEPLOY="true",
        EMAIL_URL=smtp_server.url,
        SCHEDULED_EMAILS_LEASE_SECONDS=str(LEASE_SECONDS),
        SCHEDULED_EMAILS_CONNECTIONS=str(LANES),
    )
    smtp_server.recorder.before_reply = None

    if pgbouncer.session_is_pooled():
        # The pooler replaces the killed server connections between transactions: the
        # run may not even notice the outage. Nothing may be lost either way.
        assert done.returncode in (0, 1), done.stderr
    else:
        assert done.returncode == 1
        assert "failed" in done.stderr
        assert statuses().get("sent", 0) < 60
    assert "Traceback" not in done.stderr
    assert ScheduledEmail.objects.count() == 60

    # The rows the dead run held are claimable again once their lease has passed: wait for
    # exactly that, as the data says, instead of a fixed sleep.
    held_until = ScheduledEmail.objects.aggregate(until=Max("claimed_until"))["until"]
    if held_until is not None:
        assert wait_for(lambda: timezone.now() > held_until, LEASE_SECONDS + 30, interval=0.05)
    outcome = run_task("scheduled_emails", "scheduler")

    assert outcome.success, outcome.error
    assert statuses() == {"sent": 60}
    received = smtp_server.received()
    assert len(received) == 60
    # at most the message each lane had in flight when its database connection died
    assert sum(count - 1 for count in received.values()) <= LANES
    assert ScheduledEmail.objects.filter(sent_at__lte=timezone.now()).count() == 60
