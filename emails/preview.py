"""An onboarding email rendered for a chosen user, for the admin's preview: the same
`compose()` the sender uses, on an unsaved row, so nothing is scheduled or sent."""

from __future__ import annotations

from dataclasses import dataclass

from emails.models import ScheduledEmail
from emails.outbox.compose import compose


@dataclass
class Preview:
    subject: str
    from_email: str
    to: list[str]
    headers: dict[str, str]
    text: str
    html: str


def render_preview(*, user, email_type: str) -> Preview:
    message = compose(ScheduledEmail(user=user, email_type=email_type))
    html = next(
        (content for content, mimetype in message.alternatives if mimetype == "text/html"), ""
    )
    return Preview(
        subject=message.subject,
        from_email=message.from_email,
        to=list(message.to),
        headers={name: str(value) for name, value in message.extra_headers.items()},
        text=message.body,
        html=html,
    )
