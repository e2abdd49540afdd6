"""The suppression list: addresses no onboarding email is ever sent to again.

An address lands here when an ESP reports a hard bounce, a rejection or a spam complaint
(`emails/tracking.py`), when the SMTP server refuses a mailbox for good, or by an admin's
hand (`emails/admin.py`, which also takes addresses off through `unsuppress`).
Addresses are compared case-insensitively (stored lower-case). Suppressing cancels the
pending onboarding emails of every user with that address at once; the sender also checks
the list for each claimed email just before it goes out (`reachability.py`), so an address
suppressed while a batch is in flight is still skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from emails.models import EmailStatus, EmailSuppression, ScheduledEmail, normalize_address


@dataclass(frozen=True)
class Suppressed:
    """What `suppress` did: the address's entry, whether it is new, emails cancelled."""

    entry: EmailSuppression
    created: bool
    cancelled: int


def suppress(
    address: str, *, reason: str, event: str = "", esp: str = "", added_by=None
) -> Suppressed:
    """Put `address` on the suppression list and cancel its pending onboarding emails.

    Idempotent: `created` is True when the address was not suppressed before; an address
    already on the list keeps its first entry (its pending emails are cancelled all the
    same). `added_by` is the admin user who added it by hand.
    """
    address = normalize_address(address)
    if not address:
        raise ValueError("An address is required to suppress it.")
    with transaction.atomic():
        entry, created = EmailSuppression.objects.get_or_create(
            address=address,
            defaults={"reason": reason[:500], "event": event, "esp": esp, "added_by": added_by},
        )
        cancelled = cancel_pending(address, f"address suppressed: {reason}")
    return Suppressed(entry, created, cancelled)


def unsuppress(address: str) -> bool:
    """Take `address` off the list (True when it was on it). Cancelled emails stay
    cancelled; an admin can queue them again."""
    deleted, _ = EmailSuppression.objects.of_address(address).delete()
    return bool(deleted)


def is_suppressed(address: str) -> bool:
    return EmailSuppression.objects.of_address(address).exists()


def suppressed_among(addresses: list[str]) -> set[str]:
    """The suppressed ones among `addresses` (normalized), in one query."""
    wanted = {normalize_address(address) for address in addresses}
    found = EmailSuppression.objects.filter(address__in=wanted)
    return set(found.values_list("address", flat=True))


def cancel_pending(address: str, reason: str) -> int:
    """Cancel the pending onboarding emails of every user whose address is `address`."""
    pending = ScheduledEmail.objects.filter(
        status=EmailStatus.PENDING, user__email__iexact=normalize_address(address)
    )
    return pending.cancel(reason)
