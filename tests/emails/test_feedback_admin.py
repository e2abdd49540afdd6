"""The admin side of delivery feedback: the suppression list (added and removed by hand,
with a reason), the stored ESP events (read-only), and the preview of each email."""

import html
import re
from urllib.parse import urlsplit

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from emails.models import EmailEvent, EmailPreference, EmailSuppression, ScheduledEmail
from emails.outbox.suppression import suppress

pytestmark = pytest.mark.django_db

SUPPRESSIONS = "/admin/emails/emailsuppression/"
EVENTS = "/admin/emails/emailevent/"
PREVIEW = "/admin/emails/scheduledemail/preview/"


@pytest.fixture
def root():
    return get_user_model().objects.create_superuser("root", "root@example.test", "pw")


@pytest.fixture
def admin_client(client, root):
    client.force_login(root)
    return client


@pytest.fixture
def ann(settings):
    settings.CLOUD_DEPLOY = True
    return get_user_model().objects.create_user(
        "ann", "Ann@Example.test", "pw", first_name="O'Brien & <Sons>"
    )


def statuses_of(user) -> set[str]:
    return set(ScheduledEmail.objects.filter(user=user).values_list("status", flat=True))


def test_adding_an_address_by_hand_suppresses_it_and_cancels_its_emails(admin_client, root, ann):
    response = admin_client.post(
        f"{SUPPRESSIONS}add/",
        {"address": " ANN@example.TEST ", "reason": "asked us by phone"},
        follow=True,
    )

    assert response.status_code == 200
    entry = EmailSuppression.objects.get()
    assert (entry.address, entry.reason, entry.added_by) == (
        "ann@example.test",
        "asked us by phone",
        root,
    )
    assert statuses_of(ann) == {"cancelled"}
    assert b"3 pending emails cancelled" in response.content


@pytest.mark.parametrize(
    "data, error",
    [
        ({"address": "ann@example.test", "reason": "again"}, b"already on the suppression list"),
        ({"address": "not an address", "reason": "x"}, b"valid email address"),
        ({"address": "new@example.test", "reason": "   "}, b"This field is required"),
    ],
)
def test_bad_additions_are_refused_and_change_nothing(admin_client, data, error):
    suppress("ANN@example.test", reason="hard bounce", event="bounced", esp="Postmark")

    response = admin_client.post(f"{SUPPRESSIONS}add/", data)

    assert response.status_code == 200  # the form again, with its error
    assert error in response.content
    assert list(EmailSuppression.objects.values_list("address", "reason")) == [
        ("ann@example.test", "hard bounce")
    ]


def test_removing_needs_a_reason_kept_in_the_admin_history(admin_client, root, ann):
    suppress(ann.email, reason="hard bounce", event="bounced", esp="Postmark")
    entry = EmailSuppression.objects.get()
    remove = {"action": "remove_with_reason", "_selected_action": [str(entry.pk)]}

    refused = admin_client.post(SUPPRESSIONS, {**remove, "reason": " "}, follow=True)
    assert b"Give a reason" in refused.content
    assert EmailSuppression.objects.exists()

    done = admin_client.post(SUPPRESSIONS, {**remove, "reason": "typo fixed"}, follow=True)

    assert b"1 addresses removed" in done.content
    assert not EmailSuppression.objects.exists()
    log = LogEntry.objects.get(action_flag=DELETION)
    assert (log.user, log.object_repr, log.change_message) == (
        root,
        str(entry),
        "Unsuppressed: typo fixed",
    )


def test_the_list_searches_and_filters_and_offers_no_reasonless_delete(admin_client):
    suppress("ann@example.test", reason="hard bounce", event="bounced", esp="Postmark")
    suppress("bob@example.test", reason="complaint", event="complained", esp="Amazon SES")

    found = admin_client.get(SUPPRESSIONS, {"q": "ANN@"})
    filtered = admin_client.get(SUPPRESSIONS, {"event": "complained"})

    assert b"ann@example.test" in found.content and b"bob@example.test" not in found.content
    assert b"bob@example.test" in filtered.content
    assert b"ann@example.test" not in filtered.content
    assert b"delete_selected" not in found.content
    entry = EmailSuppression.objects.get(address="ann@example.test")
    assert admin_client.get(f"{SUPPRESSIONS}{entry.pk}/delete/").status_code == 403


def test_stored_events_are_visible_and_read_only(admin_client):
    event = EmailEvent.objects.create(
        esp="Postmark",
        event_id="901542550",
        event_type="bounced",
        recipient="ann@example.test",
        action="suppressed",
        payload={"Details": "smtp;550 5.1.1"},
    )

    listing = admin_client.get(EVENTS, {"esp": "Postmark"})
    detail = admin_client.get(f"{EVENTS}{event.pk}/change/")
    edit = admin_client.post(f"{EVENTS}{event.pk}/change/", {"recipient": "x@example.test"})

    assert b"ann@example.test" in listing.content and b"suppressed" in listing.content
    assert detail.status_code == 200 and b"smtp;550 5.1.1" in detail.content
    assert edit.status_code == 403
    assert admin_client.get(f"{EVENTS}add/").status_code == 403
    assert admin_client.get(f"{EVENTS}{event.pk}/delete/").status_code == 403
    assert EmailEvent.objects.get().recipient == "ann@example.test"


@pytest.mark.parametrize("email_type", ["welcome", "day3", "day7"])
def test_preview_renders_each_email_for_the_chosen_user(admin_client, ann, email_type):
    before = list(ScheduledEmail.objects.values_list("pk", "status"))

    response = admin_client.get(PREVIEW, {"user": "ann@example.TEST", "email_type": email_type})

    assert response.status_code == 200
    page = response.content.decode()
    assert ann.email in page
    (text,) = re.findall(r'<pre id="preview-text"[^>]*>(.*?)</pre>', page, re.S)
    assert "/emails/unsubscribe/" in html.unescape(text)
    # The message's HTML is one escaped attribute of a sandboxed frame: no markup of it
    # (nor the user's name) reaches the admin page itself.
    (srcdoc,) = re.findall(r'<iframe id="preview-html" sandbox="" srcdoc="([^"]*)"', page)
    assert "<html" in html.unescape(srcdoc).lower()
    assert "O&#x27;Brien" in html.unescape(srcdoc) or "O&#39;Brien" in html.unescape(srcdoc)
    assert "<Sons>" not in page
    assert list(ScheduledEmail.objects.values_list("pk", "status")) == before  # nothing sent


def test_the_preview_gives_no_working_unsubscribe_link_even_to_a_viewer(client, ann):
    """Anyone holding a user's real link can opt them out: a staff member who may only
    view emails gets an example link that unsubscribes nobody."""
    viewer = get_user_model().objects.create_user("viewer", "v@example.test", "pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_scheduledemail"))
    client.force_login(viewer)

    response = client.get(PREVIEW, {"user": "ann", "email_type": "welcome"})
    page = html.unescape(html.unescape(response.content.decode()))  # srcdoc is escaped twice
    links = set(re.findall(r"https?://[^\s\"'<>]*/emails/unsubscribe/[^\s\"'<>]+", page))

    assert response.status_code == 200
    assert links
    for link in links:
        assert client.post(urlsplit(link).path).status_code == 400  # "Invalid unsubscribe link"
    assert not EmailPreference.objects.filter(user=ann, onboarding_opt_out=True).exists()
    assert ScheduledEmail.objects.filter(user=ann, status="pending").count() == 3


def test_preview_finds_users_by_id_or_username_and_says_when_none(admin_client, ann):
    by_id = admin_client.get(PREVIEW, {"user": str(ann.pk), "email_type": "welcome"})
    by_name = admin_client.get(PREVIEW, {"user": "ann", "email_type": "day3"})
    missing = admin_client.get(PREVIEW, {"user": "nobody", "email_type": "welcome"})

    assert 'id="preview-text"' in by_id.content.decode()
    assert 'id="preview-text"' in by_name.content.decode()
    assert b"No user with id, username or email" in missing.content
    assert b'id="preview-text"' not in missing.content


def test_the_scheduled_email_page_links_to_its_preview(admin_client, ann):
    row = ScheduledEmail.objects.get(user=ann, email_type="day3")

    page = admin_client.get(f"/admin/emails/scheduledemail/{row.pk}/change/").content.decode()

    assert f"{PREVIEW}?user={ann.pk}&amp;email_type=day3" in page


def test_preview_needs_staff(client, ann):
    client.force_login(ann)
    response = client.get(PREVIEW, {"user": "ann", "email_type": "welcome"})
    assert response.status_code == 302  # to the admin login
    assert "preview-text" not in response.content.decode()
