"""Turning a scheduled row into the email its user receives.

Subject, plain text and HTML come from `templates/emails/<type>/`; every message carries
the one-click unsubscribe link in its body and in the RFC 8058 headers, so mail clients
offer their own "Unsubscribe" button. Only the HTML part is HTML-escaped: the subject and
the plain text are not HTML, so `O'Brien & Sons` stays as written there.

Every message of one (user, email type) carries the same `Message-ID`, so a message sent
again after an unknown outcome (the connection dropped before the server's answer) is
recognisable as the same one by the receiving server, the ESP and the mail client. The
same key travels as anymail `metadata` (`message_key`), which ESP backends attach to the
message and echo back in their tracking webhooks.
"""

from __future__ import annotations

from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import Context
from django.template.loader import get_template, render_to_string

from emails.conf import email_settings
from emails.models import ScheduledEmail
from emails.unsubscribe import unsubscribe_url

FALLBACK_DOMAIN = "pluggedin.invalid"


def context_for(email: ScheduledEmail) -> dict:
    user = email.user
    name = (user.get_full_name() if hasattr(user, "get_full_name") else "") or user.get_username()
    return {
        "user": user,
        "name": name,
        "app_url": email_settings.APP_URL,
        "unsubscribe_url": unsubscribe_url(user.pk),
        "email_type": email.email_type,
    }


def message_key(email: ScheduledEmail) -> str:
    """Stable for the (user, email type): the row is unique on both and keeps its id."""
    return f"onboarding-{email.email_type}-{email.pk.hex}"


def message_id(email: ScheduledEmail) -> str:
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or FALLBACK_DOMAIN
    return f"<{message_key(email)}@{domain}>"


def render_text(template_name: str, context: dict) -> str:
    """Render a plain-text template (subject, text body) without HTML autoescaping;
    templates it includes render the same way. The result is a plain `str`, not marked
    safe: whoever puts it into HTML (the admin preview) must escape it."""
    template = get_template(template_name).template
    return "".join([template.render(Context(context, autoescape=False))])


def compose(email: ScheduledEmail) -> EmailMultiAlternatives:
    context = context_for(email)
    folder = f"emails/{email.email_type}"
    subject = " ".join(render_text(f"{folder}/subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_text(f"{folder}/body.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.user.email],
        headers={
            "Message-ID": message_id(email),
            "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Pluggedin-Email-Type": email.email_type,
        },
    )
    message.metadata = {"message_key": message_key(email), "email_type": email.email_type}
    message.attach_alternative(render_to_string(f"{folder}/body.html", context), "text/html")
    return message
