"""A cached token admits handshakes without a query, and a revocation ends that at once.

The handshake's token cache (feeds/tokencache.py, docs/SECURITY.md) in the
process the tests run in, through the real ASGI application: a token the
cache holds is refused at the very next handshake once it is revoked over the
REST API, its user disabled or deleted, or it expires; a change this process
never hears of (a bulk ``update``, which sends no signal) is seen once the
cached check is older than ``MAX_AGE_S``, on a clock the test moves.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from feeds import tokencache
from feeds.auth import token_cache, token_digest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _empty_cache(settings):
    settings.FEED_AUTH_RECHECK_S = 3600
    token_cache.clear()
    yield
    token_cache.clear()


async def admitted(connect, token: str) -> bool:
    """One handshake with ``token``: True when it is accepted and welcomed."""
    path = f"/ws/quotes/?token={token}"
    try:
        client = await connect(path)
    except AssertionError:  # refused: the communicator saw a close before accept
        return False
    assert (await client.recv())["type"] == "welcome"
    return True


async def refused(connect, token: str) -> bool:
    return not await admitted(connect, token)


@pytest.fixture
def connect_any(connect):
    """``connect`` that raises AssertionError on a refused handshake instead of asserting it."""

    async def _connect(path: str):
        return await connect(path)

    return _connect


async def test_a_cached_token_is_admitted_without_a_query(connect_any, user):
    assert await admitted(connect_any, user.token)
    queries = token_cache.queries
    for _ in range(3):
        assert await admitted(connect_any, user.token)
    assert token_cache.queries == queries
    assert token_cache.hits >= 3


async def test_a_token_revoked_over_rest_is_refused_at_the_next_handshake(connect_any, user):
    from rest_framework.test import APIClient

    assert await admitted(connect_any, user.token)
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Token {user.token}")
    response = await sync_to_async(http.post)("/api/token/revoke/")
    assert response.status_code == 200
    assert await refused(connect_any, user.token)


async def test_a_disabled_user_is_refused_at_the_next_handshake(connect_any, user):
    assert await admitted(connect_any, user.token)

    @database_sync_to_async
    def disable():
        user.is_active = False
        user.save()

    await disable()
    assert await refused(connect_any, user.token)


async def test_a_deleted_user_is_refused_at_the_next_handshake(connect_any, user, bob):
    assert await admitted(connect_any, user.token)
    assert await admitted(connect_any, bob.token)
    await database_sync_to_async(user.delete)()
    assert await refused(connect_any, user.token)
    assert await admitted(connect_any, bob.token)  # another user's token stays cached


async def test_a_token_that_expires_while_cached_is_refused_from_its_expiry(
    connect_any, user, monkeypatch
):
    from knox.models import get_token_model

    expiry = time.time() + 3600
    await database_sync_to_async(
        lambda: get_token_model()
        .objects.filter(digest=token_digest(user.token))
        .update(expiry=_aware(expiry))
    )()
    assert await admitted(connect_any, user.token)
    queries = token_cache.queries
    # The hour passes: for the cache's clock, and for the row (moved, so the database's
    # clock need not move). The cached check is fresh; its expiry alone sends it to ask.
    monkeypatch.setattr(token_cache, "wall", lambda: expiry + 1)
    await database_sync_to_async(
        lambda: get_token_model()
        .objects.filter(digest=token_digest(user.token))
        .update(expiry=_aware(time.time() - 1))
    )()
    assert await refused(connect_any, user.token)
    assert token_cache.queries == queries + 1


async def test_a_change_nobody_announced_is_seen_once_the_check_is_a_second_old(
    connect_any, user, monkeypatch
):
    # queryset.update() sends no signal, so no revocation event: only the bound is left.
    from knox.models import get_token_model

    now = [time.monotonic()]
    monkeypatch.setattr(token_cache, "clock", lambda: now[0])
    assert await admitted(connect_any, user.token)
    await database_sync_to_async(
        lambda: get_token_model()
        .objects.filter(digest=token_digest(user.token))
        .update(expiry=_aware(time.time() - 60))
    )()
    now[0] += tokencache.MAX_AGE_S / 2
    assert await admitted(connect_any, user.token)  # within the bound, the cached check stands
    now[0] += tokencache.MAX_AGE_S / 2 + 0.01
    assert await refused(connect_any, user.token)


async def test_a_password_change_reads_the_user_afresh_and_leaves_its_tokens(connect_any, user):
    # Tokens survive a new password (knox; docs/SECURITY.md); the cache forgets the user
    # anyway, so the next handshake is checked against the database.
    assert await admitted(connect_any, user.token)
    queries = token_cache.queries

    @database_sync_to_async
    def new_password():
        user.set_password("another-pass-456")
        user.save()

    await new_password()
    assert await admitted(connect_any, user.token)
    assert token_cache.queries == queries + 1


def _aware(epoch: float):
    from django.utils import timezone

    return timezone.now() + timedelta(seconds=epoch - time.time())
