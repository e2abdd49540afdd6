"""The oauth app's maintenance tasks; `oauth/apps.py` registers them."""

from __future__ import annotations

from .models import PKCEState


def cleanup_pkce_states(*, dry_run: bool = False) -> dict[str, int | bool]:
    """Delete expired PKCE states; a state past `expires_at` can never be consumed."""
    count = PKCEState.objects.delete_expired(dry_run=dry_run)
    if dry_run:
        return {"deletedCount": 0, "expiredCount": count, "dryRun": True}
    return {"deletedCount": count}


def pkce_backlog() -> dict[str, int]:
    return {"expiredPkceStates": PKCEState.objects.expired().count()}
