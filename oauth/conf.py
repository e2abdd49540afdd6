"""The oauth app's settings, with their defaults (see `maintenance/conf.py`)."""

from __future__ import annotations

from maintenance.conf import AppSettings, Setting, whole_number

oauth_settings = AppSettings(
    {
        "PKCE_STATE_TTL_SECONDS": Setting(
            600, "Lifetime of a PKCE state.", whole_number(1), env=int, cron=True
        ),
        "OAUTH_SESSION_TTL_SECONDS": Setting(
            900,
            "Lifetime of an mcp-remote OAuth session.",
            whole_number(1),
            env=int,
            cron=True,
        ),
    }
)
