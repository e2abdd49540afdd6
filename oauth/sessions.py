"""mcp-remote OAuth sessions: opened when a flow starts, deleted by the hourly cleanup."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from maintenance.runs.clock import database_now
from oauth.conf import oauth_settings
from oauth.models import OAuthSession


def create_session(
    server_uuid: uuid.UUID | str,
    profile_uuid: uuid.UUID | str,
    callback_url: str,
    provider: str = "",
    *,
    ttl: timedelta | None = None,
) -> OAuthSession:
    """Open a session that lives OAUTH_SESSION_TTL_SECONDS unless `ttl` says otherwise,
    on the database's clock."""
    now = database_now()
    ttl = ttl if ttl is not None else timedelta(seconds=oauth_settings.OAUTH_SESSION_TTL_SECONDS)
    return OAuthSession.objects.create(
        state=secrets.token_urlsafe(32),
        server_uuid=uuid.UUID(str(server_uuid)),
        profile_uuid=uuid.UUID(str(profile_uuid)),
        callback_url=callback_url,
        provider=provider,
        created_at=now,
        expires_at=now + ttl,
    )
