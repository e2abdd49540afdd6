"""`unreachable_reason()`: the verdict on each claimed email just before it is sent, read
from the database as it is at that moment, and what it costs per message."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from emails.models import EmailPreference
from emails.outbox import claims, process_scheduled_emails
from emails.outbox.reachability import unreachable_reason
from emails.outbox.suppression import suppress
from tests.factories import make_due

pytestmark = pytest.mark.django_db


def test_each_reason_a_claimed_email_may_not_go():
    opted_out, deactivated, no_address, suppressed, deleted, fine = make_due(6)
    batch = claims.claim(10, timezone.now())  # claiming does not look at the user
    EmailPreference.objects.opt_out(opted_out.user_id)
    get_user_model().objects.filter(pk=deactivated.user_id).update(is_active=False)
    get_user_model().objects.filter(pk=no_address.user_id).update(email="")
    suppress(suppressed.user.email.upper(), reason="hard bounce")  # a bounce arrives
    get_user_model().objects.filter(pk=deleted.user_id).delete()

    assert {email.pk: unreachable_reason(email) for email in batch} == {
        opted_out.pk: "unsubscribed",
        deactivated.pk: "user deactivated",
        no_address.pk: "user has no email address",
        suppressed.pk: "address suppressed",
        deleted.pk: "user deleted",
        fine.pk: "",
    }


def queries_of_a_run(count: int, prefix: str) -> int:
    make_due(count, prefix=prefix)
    with CaptureQueriesContext(connection) as queries:
        assert process_scheduled_emails()["sent"] == count
    return len(queries)


@pytest.mark.postgres
def test_checking_each_message_costs_no_query_of_its_own(smtp_server, settings):
    """On PostgreSQL the check rides on the previous message's "sent" record: a run of 40
    emails makes no more queries than a run of 4."""
    settings.SCHEDULED_EMAILS_CONNECTIONS = 1

    assert queries_of_a_run(40, "many") <= queries_of_a_run(4, "few")
