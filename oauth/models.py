"""OAuth state kept only for minutes: PKCE states (`oauth_pkce_states`) and mcp-remote
OAuth sessions (`mcp_oauth_sessions`)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from maintenance.tables.purge import purge_expired


class ExpiringQuerySet(models.QuerySet):
    def expired(self, now: datetime | None = None) -> ExpiringQuerySet:
        return self.filter(expires_at__lt=now or timezone.now())

    def active(self, now: datetime | None = None) -> ExpiringQuerySet:
        return self.filter(expires_at__gte=now or timezone.now())

    def delete_expired(self, now: datetime | None = None, *, dry_run: bool = False) -> int:
        """Delete (or with `dry_run` count) rows expired at `now`, in short batches."""
        return purge_expired(self.model, now or timezone.now(), dry_run=dry_run, using=self.db)


class ExpiringModel(models.Model):
    """A row that is useless after `expires_at` and deleted by a cleanup task."""

    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    objects = ExpiringQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def is_expired(self) -> bool:
        return self.expires_at < timezone.now()


class PKCEState(ExpiringModel):
    state = models.CharField(max_length=128, primary_key=True)
    server_uuid = models.UUIDField(db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    code_verifier = models.CharField(max_length=128)
    redirect_uri = models.TextField()
    integrity_hash = models.CharField(max_length=64)

    class Meta:
        db_table = "oauth_pkce_states"
        verbose_name = "PKCE state"

    def __str__(self) -> str:
        return f"{self.state[:8]}… for server {self.server_uuid}"


class OAuthSession(ExpiringModel):
    """An mcp-remote OAuth flow in progress: `state` ties the provider's callback back to
    the server and profile that started it, until `expires_at`."""

    state = models.CharField(max_length=255, unique=True)
    server_uuid = models.UUIDField(db_index=True)
    profile_uuid = models.UUIDField()
    callback_url = models.TextField()
    provider = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        db_table = "mcp_oauth_sessions"
        verbose_name = "mcp-remote OAuth session"

    def __str__(self) -> str:
        return f"{self.provider or 'OAuth'} session {self.state[:8]}… for server {self.server_uuid}"
