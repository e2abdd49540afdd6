"""Turning a scheduled row into the email its user receives.

Subject, plain text and HTML come from `templates/emails/<type>/`; every message carries
the one-click unsubscribe link in its body and in the RFC 8058 headers, so mail clients
offer their own "Unsubscribe" button.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from .conf import email_settings
from .models import ScheduledEmail
from .unsubscribe import unsubscribe_url


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


def compose(email: ScheduledEmail) -> EmailMultiAlternatives:
    context = context_for(email)
    folder = f"emails/{email.email_type}"
    subject = " ".join(render_to_string(f"{folder}/subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"{folder}/body.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.user.email],
        headers={
            "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Pluggedin-Email-Type": email.email_type,
        },
    )
    message.attach_alternative(render_to_string(f"{folder}/body.html", context), "text/html")
    return message
