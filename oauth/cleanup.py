"""The oauth app's maintenance tasks; `oauth/apps.py` registers them."""

from __future__ import annotations

from django.db import models

from .models import OAuthSession, PKCEState


def cleanup_pkce_states(*, dry_run: bool = False) -> dict[str, int | bool]:
    """Delete expired PKCE states; a state past `expires_at` can never be consumed."""
    return _delete_expired(PKCEState, dry_run=dry_run)


def cleanup_oauth_sessions(*, dry_run: bool = False) -> dict[str, int | bool]:
    """Delete expired mcp-remote OAuth sessions; a callback after expiry is refused anyway."""
    return _delete_expired(OAuthSession, dry_run=dry_run)


def pkce_backlog() -> dict[str, int]:
    return {"expiredPkceStates": PKCEState.objects.expired().count()}


def oauth_session_backlog() -> dict[str, int]:
    return {"expiredOAuthSessions": OAuthSession.objects.expired().count()}


def _delete_expired(model: type[models.Model], *, dry_run: bool) -> dict[str, int | bool]:
    """Both cleanups share one result shape: `deletedCount`, plus `expiredCount` on a dry run."""
    count = model.objects.delete_expired(dry_run=dry_run)
    if dry_run:
        return {"deletedCount": 0, "expiredCount": count, "dryRun": True}
    return {"deletedCount": count}
