"""Addresses no retry can ever deliver to: failed at once, with the reason."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email


def undeliverable_reason(address: str) -> str:
    """Why `address` can never receive mail (a line break in it, a list of addresses,
    invalid syntax), or "" when it looks like one mailbox."""
    if "\r" in address or "\n" in address:
        return "undeliverable address: it contains a line break"
    if "," in address or ";" in address:
        return "undeliverable address: a list of addresses, not one mailbox"
    try:
        validate_email(address)
    except ValidationError:
        return "undeliverable address: invalid syntax"
    return ""
