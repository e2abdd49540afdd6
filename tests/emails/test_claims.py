"""Claims on databases without SKIP LOCKED (SQLite): a row another runner took between
this runner's read and its update is not taken a second time."""

import pytest
from django.db import connection
from django.utils import timezone

from emails.models import ScheduledEmail
from emails.outbox import claims
from tests.factories import make_due

pytestmark = pytest.mark.django_db


@pytest.fixture
def conditional_claims():
    if connection.features.has_select_for_update_skip_locked:
        pytest.skip("claims use SELECT ... FOR UPDATE SKIP LOCKED on this database")


def test_rows_taken_by_another_runner_after_the_read_are_not_taken_again(conditional_claims):
    make_due(3)
    now = timezone.now()
    other_runner: list = []

    def another_runner_claims_first(execute, sql, params, many, context):
        # The first conditional UPDATE of this runner: the other runner gets there first.
        if sql.startswith("UPDATE") and not other_runner:
            other_runner.append(None)
            other_runner.extend(email.pk for email in claims.claim(3, now))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(another_runner_claims_first):
        mine = claims.claim(3, now)

    assert len(other_runner) == 4  # the other runner took all three
    assert mine == []
    assert {(row.status, row.attempts) for row in ScheduledEmail.objects.all()} == {("sending", 1)}
