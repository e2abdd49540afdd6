"""An HTTP-triggered cleanup stays within `MAINTENANCE_HTTP_BUDGET_SECONDS`: it stops at
the budget as it would at its deadline, but answers 200 with what it deleted and the run
succeeds; the next trigger deletes the rest."""

import pytest

from tests.assertions import stopped_at_the_budget
from tests.maintenance.test_deadlines import _newest_of_five_expired_rows_locked

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

URL = "/api/oauth/cleanup-pkce"


def test_a_cleanup_at_its_budget_answers_200_with_what_it_deleted(client, auth_header, settings):
    settings.MAINTENANCE_HTTP_BUDGET_SECONDS = 1.5
    with _newest_of_five_expired_rows_locked(settings, max_runtime="60"):
        body, took = stopped_at_the_budget(client, URL, auth_header)

    assert body["deletedCount"] == 4
    assert body["message"] == (
        "Deleted 4 expired PKCE states; stopped after the 1.5 s HTTP budget,"
        " the next trigger continues"
    )
    assert 1.4 < took < 3

    again = client.post(f"{URL}?force=1", **auth_header).json()
    assert again["deletedCount"] == 1 and "budgetExhausted" not in again
