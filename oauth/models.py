"""OAuth state kept only for minutes: PKCE states (`oauth_pkce_states`) and mcp-remote
OAuth sessions (`mcp_oauth_sessions`).

Expiry is the database's clock, never a host's: `expires_at` of a new row is the
database's now plus the lifetime, and every comparison that decides (cleanup, consumption,
backlog) is made by the database, so a host whose clock runs ahead deletes nothing live."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.functions import Now
from django.utils import timezone

from maintenance.runs.clock import database_now
from maintenance.tables.purge import purge_expired


class ExpiringQuerySet(models.QuerySet):
    def expired(self, now: datetime | None = None) -> ExpiringQuerySet:
        """Rows expired at `now`, by default the database's now (compared in SQL)."""
        return self.filter(expires_at__lt=now or Now())

    def active(self, now: datetime | None = None) -> ExpiringQuerySet:
        return self.filter(expires_at__gte=now or Now())

    def with_expiry(self) -> ExpiringQuerySet:
        """Each row with `expired_now`: whether it has expired, on the database's clock."""
        expired = ExpressionWrapper(Q(expires_at__lt=Now()), output_field=BooleanField())
        return self.annotate(expired_now=expired)

    def delete_expired(self, now: datetime | None = None, *, dry_run: bool = False) -> int:
        """Delete (or with `dry_run` count) rows expired at `now`, in short batches; by
        default one cutoff for every batch: the database's now when the cleanup starts."""
        cutoff = now or database_now(self.db)
        return purge_expired(self.model, cutoff, dry_run=dry_run, using=self.db)


class ExpiringModel(models.Model):
    """A row that is useless after `expires_at` and deleted by a cleanup task."""

    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    objects = ExpiringQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def is_expired(self) -> bool:
        """On this host's clock: for display only; what decides asks the database
        (`ExpiringQuerySet.with_expiry`)."""
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
