"""PKCE states (RFC 7636): created for an authorization request, consumed exactly once.

The stored row carries an HMAC over all its fields, keyed from SECRET_KEY, so a row edited
in the database (a swapped redirect URI, a stretched expiry) is refused at consumption.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils.crypto import salted_hmac

from maintenance.runs.clock import database_now
from oauth.conf import oauth_settings
from oauth.models import PKCEState

INTEGRITY_SALT = "oauth.pkce.integrity"


class Consumed(enum.Enum):
    OK = "ok"
    NOT_FOUND = "not_found"
    USER_MISMATCH = "user_mismatch"
    EXPIRED = "expired"
    INTEGRITY_FAILURE = "integrity_failure"


@dataclass(frozen=True)
class NewState:
    state: str
    code_challenge: str
    code_challenge_method: str = "S256"


@dataclass(frozen=True)
class Consumption:
    outcome: Consumed
    pkce: PKCEState | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Consumed.OK


def s256_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def integrity_hash(pkce: PKCEState) -> str:
    fields = [
        pkce.state,
        str(pkce.server_uuid),
        "" if pkce.user_id is None else str(pkce.user_id),
        pkce.code_verifier,
        pkce.redirect_uri,
        _instant(pkce.created_at),
        _instant(pkce.expires_at),
    ]
    return salted_hmac(INTEGRITY_SALT, "\x1f".join(fields), algorithm="sha256").hexdigest()


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def create_state(
    server_uuid: uuid.UUID | str, redirect_uri: str, user=None, *, ttl: timedelta | None = None
) -> NewState:
    """Store a new state with a fresh verifier; the caller sends the state and challenge.
    Its `expires_at` is on the database's clock (read first: the HMAC covers it)."""
    now = database_now()
    ttl = ttl if ttl is not None else timedelta(seconds=oauth_settings.PKCE_STATE_TTL_SECONDS)
    pkce = PKCEState(
        state=secrets.token_urlsafe(32),  # 43 URL-safe characters
        server_uuid=uuid.UUID(str(server_uuid)),
        user=user,
        code_verifier=secrets.token_urlsafe(64),  # 86 unreserved characters
        redirect_uri=redirect_uri,
        created_at=now,
        expires_at=now + ttl,
    )
    pkce.integrity_hash = integrity_hash(pkce)
    pkce.save(force_insert=True)
    return NewState(state=pkce.state, code_challenge=s256_challenge(pkce.code_verifier))


def consume_state(state: str, user=None) -> Consumption:
    """Take a state exactly once. Of two concurrent consumers only the one whose DELETE
    removes the row wins; the other sees NOT_FOUND. A state presented by the wrong user is
    left in place for its owner; expired and tampered states are deleted."""
    pkce = PKCEState.objects.with_expiry().filter(pk=state).first()
    if pkce is None:
        return Consumption(Consumed.NOT_FOUND)
    if not hmac.compare_digest(pkce.integrity_hash, integrity_hash(pkce)):
        return _discard(pkce, Consumed.INTEGRITY_FAILURE)
    if pkce.user_id is not None and (user is None or user.pk != pkce.user_id):
        return Consumption(Consumed.USER_MISMATCH)
    if pkce.expired_now:  # on the database's clock
        return _discard(pkce, Consumed.EXPIRED)
    return _discard(pkce, Consumed.OK)


def _discard(pkce: PKCEState, outcome: Consumed) -> Consumption:
    deleted, _ = PKCEState.objects.filter(pk=pkce.pk).delete()
    if not deleted:
        return Consumption(Consumed.NOT_FOUND)
    return Consumption(outcome, pkce if outcome is Consumed.OK else None)
