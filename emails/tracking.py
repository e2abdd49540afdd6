"""What the ESPs tell us about delivered mail, through anymail's `tracking` signal.

Anymail's webhook views (mounted at `/anymail/`, see `webhook_urls.py`) authenticate the
ESP's post, parse it into one `AnymailTrackingEvent` per recipient and send the signal;
`record_delivery_event` below stores each event once in `email_events` and acts on it:

- a hard bounce, a rejection or a spam complaint puts the address on the suppression
  list, which cancels the pending onboarding emails of its users;
- `unsubscribed` (the ESP's own link or List-Unsubscribe) is the onboarding opt-out;
- soft bounces and deferrals (Postmark `SoftBounce`, SES `Transient`) and everything
  else are only recorded.

ESPs retry webhooks: an event already stored (same ESP, event id and recipient) changes
nothing. A database error here makes the view answer 500, so the ESP tries again later;
an event too malformed to record answers 400 (`webhook_urls.py`), so it does not.
"""

from __future__ import annotations

import hashlib
import json
import logging

from anymail.signals import AnymailTrackingEvent, EventType, tracking
from django.contrib.auth import get_user_model
from django.db import transaction
from django.dispatch import receiver

from emails.models import EmailEvent, normalize_address
from emails.outbox.suppression import suppress
from emails.unsubscribe import opt_out
from maintenance.logs.log_events import (
    EMAIL_EVENT_DUPLICATE,
    EMAIL_EVENT_OPTED_OUT,
    EMAIL_EVENT_SUPPRESSED,
    log_event,
)

logger = logging.getLogger(__name__)

SUPPRESSING = {EventType.BOUNCED, EventType.REJECTED, EventType.COMPLAINED}


@receiver(tracking, dispatch_uid="emails.record_delivery_event")
def record_delivery_event(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    record(event, esp_name)


# The event's fields that are stored or put into a suppression reason.
STORED_FIELDS = (
    "event_type",
    "event_id",
    "recipient",
    "message_id",
    "reject_reason",
    "description",
    "mta_response",
    "esp_event",
)


def record(event: AnymailTrackingEvent, esp_name: str) -> str:
    """Store `event` and act on it, once; returns what it did (also kept on the row)."""
    for name in STORED_FIELDS:
        setattr(event, name, without_nul(getattr(event, name, None)))
    recipient = normalize_address(event.recipient or "")
    with transaction.atomic():
        stored, created = EmailEvent.objects.get_or_create(
            esp=esp_name,
            event_id=event.event_id or fingerprint(event),
            recipient=recipient,
            defaults=_fields(event),
        )
        if not created:
            log_event(logger, logging.INFO, EMAIL_EVENT_DUPLICATE, esp=esp_name, id=stored.event_id)
            return "duplicate"
        stored.action = act(event, esp_name, recipient)
        stored.save(update_fields=["action"])
    return stored.action


def act(event: AnymailTrackingEvent, esp_name: str, recipient: str) -> str:
    if not recipient:
        return "recorded (no recipient)"
    if event.event_type in SUPPRESSING:
        if event.event_type == EventType.BOUNCED and is_soft_bounce(event, esp_name):
            return "recorded (soft bounce)"
        detail = event.description or event.mta_response or ""
        reason = f"{event.event_type} ({esp_name})" + (f": {detail}" if detail else "")
        suppress(recipient, reason=reason, event=event.event_type, esp=esp_name)
        log_event(logger, logging.INFO, EMAIL_EVENT_SUPPRESSED, esp=esp_name, type=event.event_type)
        return "suppressed"
    if event.event_type == EventType.UNSUBSCRIBED:
        users = get_user_model().objects.filter(email__iexact=recipient)
        user_ids = list(users.values_list("pk", flat=True))
        for user_id in user_ids:
            opt_out(user_id)
        log_event(logger, logging.INFO, EMAIL_EVENT_OPTED_OUT, esp=esp_name, users=len(user_ids))
        return f"opted out ({len(user_ids)} users)"
    return "recorded"


def is_soft_bounce(event: AnymailTrackingEvent, esp_name: str) -> bool:
    """Anymail reports some temporary failures as `bounced`; tell them apart by the
    ESP's own bounce type. Unknown formats count as hard, as anymail reports them."""
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    if esp_name == "Postmark":
        return raw.get("Type") == "SoftBounce"
    if esp_name == "Amazon SES":
        bounce_type = (raw.get("bounce") or {}).get("bounceType")
        return bounce_type is not None and bounce_type != "Permanent"
    if esp_name == "Resend":
        bounce_type = ((raw.get("data") or {}).get("bounce") or {}).get("type")
        return bounce_type is not None and bounce_type != "Permanent"
    return False


def without_nul(value):
    """`value` without NUL characters, in every string of a JSON-like structure.

    An ESP's JSON may carry `\\u0000`; PostgreSQL's text and jsonb cannot hold it, and the
    failed insert would answer 500 to every retry of a webhook that is otherwise fine."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


def fingerprint(event: AnymailTrackingEvent) -> str:
    """An id for events the ESP gives none (e.g. Postmark's subscription changes): a
    retried webhook carries the same payload, so it gets the same fingerprint."""
    parts = [
        event.event_type,
        event.recipient,
        event.message_id,
        event.timestamp.isoformat() if event.timestamp else None,
        _payload(event),
    ]
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    return f"sha256:{digest.hexdigest()}"


def _fields(event: AnymailTrackingEvent) -> dict:
    return {
        "event_type": event.event_type or "",
        "message_id": str(event.message_id or "")[:255],
        "reject_reason": event.reject_reason or "",
        "description": event.description or "",
        "mta_response": event.mta_response or "",
        "occurred_at": event.timestamp,
        "payload": _payload(event),
    }


def _payload(event: AnymailTrackingEvent) -> dict:
    """The ESP's raw event when it is JSON (Postmark, SES, Resend...), else nothing."""
    raw = event.esp_event
    if not isinstance(raw, dict):
        return {}
    try:
        return json.loads(json.dumps(raw))
    except (TypeError, ValueError):
        return {}
