"""The one-click unsubscribe link (RFC 8058): GET from the body, POST from the mail client."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import signing
from django.utils import timezone

from emails.conf import email_settings
from emails.models import EmailPreference, ScheduledEmail
from emails.sending import process_scheduled_emails
from emails.unsubscribe import make_token
from tests.factories import make_users

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann(settings):
    settings.CLOUD_DEPLOY = True
    return get_user_model().objects.create_user("ann", "ann@example.test", "pw")


def link_in_welcome(server) -> str:
    (message,) = server.messages
    return str(message["List-Unsubscribe"]).strip().strip("<>")


def path_of(link: str, settings) -> str:
    return link.removeprefix(email_settings.APP_URL)


def test_unsubscribing_through_the_link_stops_the_series(ann, smtp_server, settings, client):
    process_scheduled_emails()
    link = link_in_welcome(smtp_server)

    response = client.get(path_of(link, settings))

    assert response.status_code == 200
    assert b"unsubscribed" in response.content
    assert EmailPreference.objects.get(user=ann).onboarding_opt_out is True
    assert set(ScheduledEmail.objects.filter(user=ann).values_list("status", flat=True)) == {
        "sent",
        "cancelled",
    }
    in_a_week = timezone.now() + timedelta(days=8)
    assert process_scheduled_emails(now=in_a_week)["sent"] == 0
    assert len(smtp_server.messages) == 1


def test_one_click_post_opts_out_without_csrf(ann, settings):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    response = client.post(
        f"/emails/unsubscribe/{make_token(ann.pk)}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert EmailPreference.objects.get(user=ann).onboarding_opt_out is True
    assert not ScheduledEmail.objects.filter(user=ann, status="pending").exists()


def test_unsubscribing_twice_is_harmless(ann, client):
    path = f"/emails/unsubscribe/{make_token(ann.pk)}"
    assert client.get(path).status_code == 200
    opted_at = EmailPreference.objects.get(user=ann).opted_out_at
    assert client.get(path).status_code == 200
    assert EmailPreference.objects.get(user=ann).opted_out_at == opted_at


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "tampered",
        "other-purpose",
    ],
)
def test_a_bad_token_is_refused_and_changes_nothing(token, ann, client):
    other = make_users(1, prefix="bob")[0]
    tokens = {
        "garbage": "not-a-token",
        "tampered": make_token(ann.pk)[:-2] + "xx",
        "other-purpose": signing.dumps(ann.pk, salt="something.else"),
    }

    response = client.get(f"/emails/unsubscribe/{tokens[token]}")

    assert response.status_code == 400
    assert b"invalid" in response.content
    assert not EmailPreference.objects.exists()
    assert ScheduledEmail.objects.filter(user=ann, status="pending").count() == 3
    assert get_user_model().objects.filter(pk__in=[ann.pk, other.pk], is_active=True).count() == 2


def test_a_token_signed_with_djangos_default_salt_is_refused(ann):
    """Anything else this project signs with SECRET_KEY and the default salt (a value a
    user could obtain) must never unsubscribe: the link's salt is its own."""
    from django.test import Client

    token = signing.dumps(ann.pk)

    response = Client(enforce_csrf_checks=True).post(
        f"/emails/unsubscribe/{token}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 400
    assert not EmailPreference.objects.exists()
    assert ScheduledEmail.objects.filter(user=ann, status="pending").count() == 3


def test_a_link_for_a_deleted_user_answers_without_error(ann, client):
    path = f"/emails/unsubscribe/{make_token(ann.pk)}"
    ann.delete()
    assert client.get(path).status_code == 200
    assert not EmailPreference.objects.exists()
