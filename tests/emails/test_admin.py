"""The admin's retry and cancel actions, and the backlog the status endpoint reports."""

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from emails.models import ScheduledEmail
from emails.tasks import email_backlog
from tests.factories import make_due

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/emails/scheduledemail/"


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.test", "pw")
    client.force_login(admin)
    return client


def act(client, action: str, rows) -> None:
    response = client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(row.pk) for row in rows]},
        follow=True,
    )
    assert response.status_code == 200


def test_changelist_filters_by_status_and_searches_by_email(admin_client):
    make_due(2)
    ScheduledEmail.objects.filter(user__username="user1").update(status="failed")
    response = admin_client.get(CHANGELIST, {"status__exact": "failed", "q": "user1@"})
    assert response.status_code == 200
    assert b"user1@example.test" in response.content
    assert b"user0@example.test" not in response.content


def test_retry_puts_failed_and_cancelled_back_with_fresh_attempts(admin_client):
    failed, cancelled, sent = make_due(3)
    ScheduledEmail.objects.filter(pk=failed.pk).update(status="failed", attempts=5, last_error="x")
    ScheduledEmail.objects.filter(pk=cancelled.pk).update(status="cancelled")
    ScheduledEmail.objects.filter(pk=sent.pk).update(status="sent")
    before = timezone.now()

    act(admin_client, "retry_now", [failed, cancelled, sent])

    for row in (failed, cancelled):
        row.refresh_from_db()
        assert (row.status, row.attempts, row.last_error) == ("pending", 0, "")
        assert row.scheduled_for >= before
    sent.refresh_from_db()
    assert sent.status == "sent"


def test_cancel_only_touches_pending(admin_client):
    pending, sent = make_due(2)
    ScheduledEmail.objects.filter(pk=sent.pk).update(status="sent")

    act(admin_client, "cancel_pending", [pending, sent])

    pending.refresh_from_db()
    sent.refresh_from_db()
    assert (pending.status, sent.status) == ("cancelled", "sent")


def test_backlog_counts_due_and_failed_emails():
    make_due(3)
    ScheduledEmail.objects.filter(user__username="user2").update(status="failed")
    assert email_backlog() == {"due_emails": 2, "failed_emails": 1}
