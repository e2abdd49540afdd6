"""System checks for the oauth app's settings (registered from `OAuthConfig.ready()`)."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, register

from maintenance.checks import SETTINGS, setting_errors
from oauth.conf import oauth_settings


@register("oauth", SETTINGS)
def check_oauth_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    return setting_errors([oauth_settings])
