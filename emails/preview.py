"""An onboarding email rendered for a chosen user, for the admin's preview: the same
`compose()` the sender uses, on an unsaved row, so nothing is scheduled or sent.

The preview is for reading the content: its unsubscribe link carries EXAMPLE_TOKEN, no
signed token, because anyone holding the real link can opt the user out, and a staff
member who may only view emails must not get that power from the preview.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from emails.models import ScheduledEmail
from emails.outbox.compose import compose
from emails.unsubscribe import BadToken, read_token

# What `signing.dumps` writes: an optional compression dot, then value:timestamp:signature.
SIGNED = re.compile(r"\.?[\w-]+:[\w-]+:[\w-]+")
EXAMPLE_TOKEN = "preview-only-not-a-valid-link"  # noqa: S105 - deliberately no token


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
        subject=without_tokens(message.subject),
        from_email=message.from_email,
        to=list(message.to),
        headers={name: without_tokens(str(value)) for name, value in message.extra_headers.items()},
        text=without_tokens(message.body),
        html=without_tokens(html),
    )


def without_tokens(text: str) -> str:
    """`text` with every valid unsubscribe token in it swapped for EXAMPLE_TOKEN, wherever
    a template put it (link, header, plain text)."""
    return SIGNED.sub(lambda found: EXAMPLE_TOKEN if _valid(found[0]) else found[0], text)


def _valid(token: str) -> bool:
    try:
        read_token(token)
    except BadToken:
        return False
    return True
