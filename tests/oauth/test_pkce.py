"""PKCE states: creation per RFC 7636 and single-use, tamper-evident consumption."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from oauth.models import PKCEState
from oauth.pkce import Consumed, consume_state, create_state, s256_challenge
from tests.processes import first_query

SERVER = uuid.UUID("6f1c1f9e-4c3f-4d8e-9a55-0d2c4f0f7a11")
UNRESERVED = re.compile(r"^[A-Za-z0-9\-._~]+$")
pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", "alice@example.test", "pw")


@pytest.fixture
def bob():
    return get_user_model().objects.create_user("bob", "bob@example.test", "pw")


def test_created_state_is_url_safe_and_its_challenge_matches_the_stored_verifier():
    new = create_state(SERVER, "https://client.test/callback")

    stored = PKCEState.objects.get(pk=new.state)
    assert len(new.state) >= 43 and UNRESERVED.match(new.state)
    assert 43 <= len(stored.code_verifier) <= 128 and UNRESERVED.match(stored.code_verifier)
    assert new.code_challenge_method == "S256"
    assert new.code_challenge == s256_challenge(stored.code_verifier)
    assert new.code_challenge != stored.code_verifier


def test_rfc_7636_appendix_b_example():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_state_lives_for_the_configured_ttl(settings):
    settings.PKCE_STATE_TTL_SECONDS = 120

    new = create_state(SERVER, "https://client.test/callback")

    stored = PKCEState.objects.get(pk=new.state)
    assert stored.expires_at - stored.created_at == timedelta(seconds=120)


def test_a_state_is_consumed_exactly_once(alice):
    new = create_state(SERVER, "https://client.test/callback", user=alice)

    first = consume_state(new.state, user=alice)
    second = consume_state(new.state, user=alice)

    assert first.outcome is Consumed.OK
    assert first.pkce.redirect_uri == "https://client.test/callback"
    assert s256_challenge(first.pkce.code_verifier) == new.code_challenge
    assert second.outcome is Consumed.NOT_FOUND
    assert not PKCEState.objects.exists()


def test_unknown_state_is_not_found():
    assert consume_state("no-such-state").outcome is Consumed.NOT_FOUND


def test_another_user_cannot_consume_and_the_owner_still_can(alice, bob):
    new = create_state(SERVER, "https://client.test/callback", user=alice)

    assert consume_state(new.state, user=bob).outcome is Consumed.USER_MISMATCH
    assert consume_state(new.state).outcome is Consumed.USER_MISMATCH
    assert consume_state(new.state, user=alice).outcome is Consumed.OK


def test_expired_state_is_refused_and_removed():
    new = create_state(SERVER, "https://client.test/callback", ttl=timedelta(seconds=-1))

    assert consume_state(new.state).outcome is Consumed.EXPIRED
    assert not PKCEState.objects.filter(pk=new.state).exists()


@pytest.mark.parametrize(
    "tamper",
    [
        {"redirect_uri": "https://attacker.test/steal"},
        {"code_verifier": "x" * 43},
        {"server_uuid": uuid.UUID(int=1)},
        {"expires_at": timezone.now() + timedelta(days=365)},
    ],
    ids=["redirect_uri", "code_verifier", "server_uuid", "expires_at"],
)
def test_a_row_edited_in_the_database_fails_integrity(tamper):
    new = create_state(SERVER, "https://client.test/callback")
    PKCEState.objects.filter(pk=new.state).update(**tamper)

    assert consume_state(new.state).outcome is Consumed.INTEGRITY_FAILURE
    assert not PKCEState.objects.filter(pk=new.state).exists()


def test_integrity_survives_a_database_round_trip(alice):
    new = create_state(SERVER, "https://client.test/callback", user=alice)
    stored = PKCEState.objects.get(pk=new.state)  # timestamps as the database returns them

    assert consume_state(stored.state, user=alice).outcome is Consumed.OK


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_two_concurrent_consumers_exactly_one_wins():
    rounds = 20
    states = [create_state(SERVER, "https://client.test/callback").state for _ in range(rounds)]
    outcomes: list[Consumed] = []
    lock = threading.Lock()

    def consume(state: str, barrier: threading.Barrier) -> None:
        first_query()  # connected first: the race is the consumption
        barrier.wait()
        outcome = consume_state(state).outcome
        with lock:
            outcomes.append(outcome)
        connection.close()

    for state in states:
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=consume, args=(state, barrier)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert outcomes.count(Consumed.OK) == rounds
    assert outcomes.count(Consumed.NOT_FOUND) == rounds
