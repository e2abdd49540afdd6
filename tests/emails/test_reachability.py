"""`unreachable_reason()`: the verdict on each claimed email just before it is sent."""

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from emails.models import EmailPreference
from emails.outbox import claims
from emails.outbox.reachability import unreachable_reason
from emails.outbox.suppression import suppress, suppressed_among
from tests.factories import make_due

pytestmark = pytest.mark.django_db


def test_each_reason_a_claimed_email_may_not_go():
    opted_out, deactivated, no_address, suppressed, fine = make_due(5)
    EmailPreference.objects.opt_out(opted_out.user_id)
    get_user_model().objects.filter(pk=deactivated.user_id).update(is_active=False)
    get_user_model().objects.filter(pk=no_address.user_id).update(email="")
    batch = claims.claim(10, timezone.now())  # claiming does not look at the user
    suppress(suppressed.user.email.upper(), reason="hard bounce")  # a bounce arrives

    assert {email.pk: unreachable_reason(email) for email in batch} == {
        opted_out.pk: "unsubscribed",
        deactivated.pk: "user deactivated",
        no_address.pk: "user has no email address",
        suppressed.pk: "address suppressed",
        fine.pk: "",
    }


def test_a_batch_is_checked_with_one_query(django_assert_num_queries):
    """What the sender uses for a whole claimed batch: one query, the same verdicts."""
    emails = make_due(5)
    batch = claims.claim(10, timezone.now())
    for email in emails[:2]:
        suppress(email.user.email.upper(), reason="hard bounce")

    with django_assert_num_queries(1):
        suppressed = suppressed_among([email.user.email for email in batch])
        verdicts = {email.pk: unreachable_reason(email, suppressed) for email in batch}

    assert verdicts == {email.pk: unreachable_reason(email) for email in batch}
    assert sorted(verdicts.values()) == ["", "", "", "address suppressed", "address suppressed"]
