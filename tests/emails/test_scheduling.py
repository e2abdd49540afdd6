from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from emails.models import ScheduledEmail
from emails.scheduling import schedule_onboarding

pytestmark = pytest.mark.django_db


@pytest.fixture
def cloud(settings):
    settings.CLOUD_DEPLOY = True
    settings.ENABLE_WELCOME_EMAILS = True


def series(user) -> dict[str, object]:
    rows = ScheduledEmail.objects.filter(user=user)
    return {row.email_type: row for row in rows}


def test_new_user_in_the_cloud_gets_welcome_now_day3_and_day7(cloud):
    before = timezone.now()
    user = get_user_model().objects.create_user("ann", "ann@example.test", "pw")
    after = timezone.now()

    rows = series(user)
    assert set(rows) == {"welcome", "day3", "day7"}
    assert before <= rows["welcome"].scheduled_for <= after
    for kind, days in (("day3", 3), ("day7", 7)):
        assert before + timedelta(days=days) <= rows[kind].scheduled_for
        assert rows[kind].scheduled_for <= after + timedelta(days=days)
    assert {row.status for row in rows.values()} == {"pending"}
    assert {row.attempts for row in rows.values()} == {0}


def test_outside_the_cloud_nothing_is_scheduled(settings):
    settings.CLOUD_DEPLOY = False
    user = get_user_model().objects.create_user("bob", "bob@example.test", "pw")
    assert series(user) == {}


def test_welcome_emails_disabled_schedules_nothing(cloud, settings):
    settings.ENABLE_WELCOME_EMAILS = False
    user = get_user_model().objects.create_user("cat", "cat@example.test", "pw")
    assert series(user) == {}


def test_saving_an_existing_user_schedules_nothing_more(cloud):
    user = get_user_model().objects.create_user("dan", "dan@example.test", "pw")
    user.first_name = "Dan"
    user.save()
    assert ScheduledEmail.objects.filter(user=user).count() == 3


def test_scheduling_twice_creates_no_duplicates(cloud):
    user = get_user_model().objects.create_user("eve", "eve@example.test", "pw")
    first = {row.pk for row in series(user).values()}

    assert schedule_onboarding(user) == 3
    assert schedule_onboarding(user) == 3
    assert {row.pk for row in series(user).values()} == first


def test_a_second_row_of_the_same_type_is_refused_by_the_database(cloud):
    from django.db import IntegrityError, transaction

    user = get_user_model().objects.create_user("fay", "fay@example.test", "pw")
    with pytest.raises(IntegrityError), transaction.atomic():
        ScheduledEmail.objects.create(user=user, email_type="welcome", scheduled_for=timezone.now())
