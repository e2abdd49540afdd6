"""The unsubscribe link (RFC 8058): GET (the body's link, or a mail scanner fetching it)
asks for confirmation and changes nothing; POST (the page's button, or the mail client's
one-click) opts out."""

import re
import subprocess
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import signing
from django.utils import timezone

from emails.conf import email_settings
from emails.models import EmailPreference, ScheduledEmail
from emails.outbox import process_scheduled_emails
from emails.unsubscribe import make_token
from tests.processes import PYTHON, ROOT, free_port, project_env, wait_for

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


def button_target(page) -> str:
    """Where the confirmation page's form posts."""
    (target,) = re.findall(r'<form method="post" action="([^"]+)"', page.content.decode())
    return target


def button_data(page) -> dict[str, str]:
    return dict(
        re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.content.decode())
    )


def test_unsubscribing_through_the_link_stops_the_series(ann, smtp_server, settings, client):
    process_scheduled_emails()
    link = link_in_welcome(smtp_server)

    page = client.get(path_of(link, settings))
    assert page.status_code == 200
    assert not EmailPreference.objects.exists()  # a scanner fetching the link changes nothing
    response = client.post(button_target(page), button_data(page))

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
    assert client.post(path).status_code == 200
    opted_at = EmailPreference.objects.get(user=ann).opted_out_at
    assert client.post(path).status_code == 200
    assert EmailPreference.objects.get(user=ann).opted_out_at == opted_at


@pytest.mark.parametrize("method", ["get", "head"])
def test_fetching_the_link_only_asks_for_confirmation(ann, client, method):
    """Mail security scanners fetch every link of a message: that unsubscribes nobody."""
    path = f"/emails/unsubscribe/{make_token(ann.pk)}"

    response = getattr(client, method)(path)

    assert response.status_code == 200
    assert not EmailPreference.objects.exists()
    assert ScheduledEmail.objects.filter(user=ann, status="pending").count() == 3
    if method == "get":
        assert b"<button" in response.content
        assert button_target(response) == path
        assert button_data(response) == {"List-Unsubscribe": "One-Click"}


def test_the_link_says_so_once_the_user_is_unsubscribed(ann, client):
    path = f"/emails/unsubscribe/{make_token(ann.pk)}"
    client.post(path)

    response = client.get(path)

    assert response.status_code == 200
    assert b"You are unsubscribed" in response.content
    assert b"<button" not in response.content


def test_the_confirmation_button_works_without_a_session_or_csrf_token(ann):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    page = client.get(f"/emails/unsubscribe/{make_token(ann.pk)}")

    response = client.post(button_target(page), button_data(page))

    assert response.status_code == 200
    assert EmailPreference.objects.get(user=ann).onboarding_opt_out is True


def test_other_methods_are_refused(ann, client):
    path = f"/emails/unsubscribe/{make_token(ann.pk)}"
    for method in ("put", "delete", "patch"):
        response = getattr(client, method)(path)
        assert response.status_code == 405
        assert "POST" in response["Allow"]
    assert not EmailPreference.objects.exists()


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "tampered",
        "other-purpose",
        "default-salt",
    ],
)
def test_a_bad_token_is_refused_and_changes_nothing(token, ann, client):
    tokens = {
        "garbage": "not-a-token",
        "tampered": make_token(ann.pk)[:-2] + "xx",
        "other-purpose": signing.dumps(ann.pk, salt="something.else"),
        "default-salt": signing.dumps(ann.pk),
    }

    for response in (
        client.get(f"/emails/unsubscribe/{tokens[token]}"),
        client.post(f"/emails/unsubscribe/{tokens[token]}"),
    ):
        assert response.status_code == 400
        assert b"invalid" in response.content
    assert not EmailPreference.objects.exists()
    assert ScheduledEmail.objects.filter(user=ann, status="pending").count() == 3


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
    assert client.post(path).status_code == 200
    assert not EmailPreference.objects.exists()


@pytest.mark.slow
def test_a_database_outage_gets_a_friendly_503_page(ann, settings):
    """A real server whose database is down (nothing listens on its port): the link and
    the button answer 503 with a page asking to try again later, not a bare 500."""
    port = free_port()
    dead_database = f"postgres://postgres@127.0.0.1:{free_port()}/pluggedin"
    server = subprocess.Popen(
        [
            *(PYTHON, "-m", "gunicorn", "--no-control-socket"),
            *("--bind", f"127.0.0.1:{port}", "pluggedin.wsgi:application"),
        ],
        cwd=ROOT,
        env=project_env(
            DATABASE_URL=dead_database,
            IN_PROCESS_SCHEDULER="false",
            SECRET_KEY=settings.SECRET_KEY,  # the key the link was signed with
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/emails/unsubscribe/{make_token(ann.pk)}"
    try:
        assert wait_for(lambda: _status(url) is not None, timeout=60), "server did not start"
        refused = [_refusal(url), _refusal(url, data=b"List-Unsubscribe=One-Click")]
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)

    for error in refused:
        assert error.code == 503
        assert error.headers["Retry-After"] == "300"
        body = error.read().decode()
        assert "try again" in body and "Server Error" not in body
    assert "emails.unsubscribe.failed error=OperationalError" in output
    assert not EmailPreference.objects.exists()


def _refusal(url: str, data: bytes | None = None) -> urllib.error.HTTPError:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, data=data, timeout=30)  # noqa: S310 - http:// only
    return refused.value


def _status(url: str) -> int | None:
    try:
        return urllib.request.urlopen(url, timeout=5).status  # noqa: S310 - http:// only
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None
