"""The oauth app's maintenance tasks, declared once; `OAuthConfig.ready()` imports this."""

from __future__ import annotations

from django.db import models

from maintenance.outcome import TaskFailed
from maintenance.registry import DRY_RUN, Task, register
from maintenance.tables.counts import bounded_count
from maintenance.tables.purge import PurgeCancelled, PurgeTimedOut
from oauth.models import OAuthSession, PKCEState


def cleanup_pkce_states(*, dry_run: bool = False) -> dict[str, int | bool]:
    """Delete expired PKCE states; a state past `expires_at` can never be consumed."""
    return _delete_expired(PKCEState, dry_run=dry_run)


def cleanup_oauth_sessions(*, dry_run: bool = False) -> dict[str, int | bool]:
    """Delete expired mcp-remote OAuth sessions; a callback after expiry is refused anyway."""
    return _delete_expired(OAuthSession, dry_run=dry_run)


def _delete_expired(model: type[models.Model], *, dry_run: bool) -> dict[str, int | bool]:
    """Both cleanups share one result shape: `deletedCount`, plus `expiredCount` on a dry run."""
    try:
        count = model.objects.delete_expired(dry_run=dry_run)
    except PurgeTimedOut as stopped:
        raise stopped.deadline.failure({"deletedCount": stopped.deleted}) from stopped
    except PurgeCancelled as stopped:
        raise TaskFailed(str(stopped), {"deletedCount": stopped.deleted}) from stopped
    if dry_run:
        return {"deletedCount": 0, "expiredCount": count, "dryRun": True}
    return {"deletedCount": count}


PKCE_CLEANUP = register(
    Task(
        name="pkce_cleanup",
        func=cleanup_pkce_states,
        description="Delete expired PKCE states.",
        message="Deleted {deletedCount} expired PKCE states",
        dry_run_message="Dry run: {expiredCount} expired PKCE states would be deleted",
        cron="*/10 * * * *",
        command="cleanup_pkce",
        path="/api/oauth/cleanup-pkce",
        order=10,
        run_at_startup=True,
        options=(DRY_RUN,),
        backlog=lambda: {"expired_pkce_states": bounded_count(PKCEState.objects.expired())},
    )
)

OAUTH_SESSION_CLEANUP = register(
    Task(
        name="oauth_session_cleanup",
        func=cleanup_oauth_sessions,
        description="Delete expired mcp-remote OAuth sessions.",
        message="Deleted {deletedCount} expired OAuth sessions",
        dry_run_message="Dry run: {expiredCount} expired OAuth sessions would be deleted",
        cron="0 * * * *",
        command="cleanup_oauth_sessions",
        path="/api/oauth/cleanup-sessions",
        order=30,
        run_at_startup=True,
        options=(DRY_RUN,),
        backlog=lambda: {"expired_oauth_sessions": bounded_count(OAuthSession.objects.expired())},
    )
)
