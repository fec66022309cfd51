"""Revoked credentials end open connections: ``unauthorized``, then close 4401 (PROTOCOL.md).

Revocation happens where an operator does it, in the admin: deleting a token,
moving it to another user, disabling or deleting the user. The broadcast on
commit closes the connections within moments; the periodic re-check is set an
hour away in these tests, except in the one that proves the re-check itself.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from feeds.auth import token_digest
from feeds.core.protocol import CloseCode
from tests.conftest import timeout

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_recheck(settings):
    settings.FEED_AUTH_RECHECK_S = 3600


@pytest.fixture
def operator(fast_hashing, transactional_db):
    """A logged-in superuser's test client, called from async tests through a thread."""
    from django.contrib.auth.models import User
    from django.test import Client as DjangoClient

    root = User.objects.create_superuser("root", password="root-pass-123")
    http = DjangoClient()
    http.force_login(root)
    return http


async def post(http, url: str, data: dict) -> int:
    response = await sync_to_async(http.post)(url, data)
    return response.status_code


async def assert_revoked(client) -> None:
    msg, _ = await client.recv_until(lambda m: m["type"] == "error", wait=5)
    assert msg["code"] == "unauthorized"
    assert await client.expect_close() == CloseCode.UNAUTHORIZED


async def assert_still_open(client, rid: str) -> None:
    assert (await client.request({"op": "ping", "id": rid}))["type"] == "pong"


async def session_cookie(user) -> bytes:
    from django.test import Client as DjangoClient

    http = DjangoClient()
    await sync_to_async(http.force_login)(user)
    return f"sessionid={http.cookies['sessionid'].value}".encode()


async def test_deleting_a_token_in_the_admin_closes_its_connections_with_4401(
    connect, user, bob, operator
):
    by_query = await connect()
    by_message = await connect("/ws/quotes/")
    await by_message.request({"op": "auth", "token": user.token, "id": "a"})
    by_session = await connect("/ws/quotes/", headers=[(b"cookie", await session_cookie(user))])
    other_user = await connect(f"/ws/quotes/?token={bob.token}")
    for client in (by_query, by_session, other_user):
        assert (await client.recv())["type"] == "welcome"

    digest = token_digest(user.token)
    status = await post(operator, f"/admin/knox/authtoken/{digest}/delete/", {"post": "yes"})
    assert status == 302

    await assert_revoked(by_query)
    await assert_revoked(by_message)
    # The session did not use the token, and bob's token is another one.
    await assert_still_open(by_session, "session")
    await assert_still_open(other_user, "bob")
    # A new connection with the revoked token is refused at the handshake.
    await connect(expect_accept=False)


async def test_moving_a_token_to_another_user_closes_its_connections(connect, user, bob, operator):
    from knox.models import AuthToken

    client = await connect()
    assert (await client.recv())["type"] == "welcome"
    # Give bob alice's token in the token admin.
    row = await database_sync_to_async(AuthToken.objects.get)(digest=token_digest(user.token))
    form = {"digest": row.digest, "token_key": row.token_key, "user": bob.pk,
            "expiry_0": f"{row.expiry:%Y-%m-%d}", "expiry_1": f"{row.expiry:%H:%M:%S}"}
    status = await post(operator, f"/admin/knox/authtoken/{row.digest}/change/", form)
    assert status == 302
    await assert_revoked(client)


async def test_disabling_a_user_in_the_admin_closes_every_connection_of_theirs(
    connect, user, bob, operator
):
    by_token = await connect()
    by_session = await connect("/ws/quotes/", headers=[(b"cookie", await session_cookie(user))])
    other_user = await connect(f"/ws/quotes/?token={bob.token}")
    for client in (by_token, by_session, other_user):
        assert (await client.recv())["type"] == "welcome"

    form = {"username": "alice", "is_active": "", "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00", "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00"}
    assert await post(operator, f"/admin/auth/user/{user.pk}/change/", form) == 302

    await assert_revoked(by_token)
    await assert_revoked(by_session)
    await assert_still_open(other_user, "bob")


async def test_deleting_a_user_closes_their_connections(connect, user, operator):
    client = await connect()
    assert (await client.recv())["type"] == "welcome"
    assert await post(operator, f"/admin/auth/user/{user.pk}/delete/", {"post": "yes"}) == 302
    await assert_revoked(client)


async def test_a_rolled_back_deletion_closes_nothing(connect, user):
    from django.db import transaction
    from knox.models import AuthToken

    client = await connect()
    assert (await client.recv())["type"] == "welcome"

    def delete_then_roll_back() -> None:
        with transaction.atomic():
            AuthToken.objects.filter(digest=token_digest(user.token)).delete()
            transaction.set_rollback(True)

    await database_sync_to_async(delete_then_roll_back)()
    await assert_still_open(client, "kept")


async def test_the_periodic_recheck_closes_what_a_lost_broadcast_missed(connect, user, settings):
    """An update() sends no signal, so no broadcast: only the re-check can see it."""
    from django.contrib.auth.models import User

    settings.FEED_AUTH_RECHECK_S = 0.2
    client = await connect()
    assert (await client.recv())["type"] == "welcome"
    await database_sync_to_async(lambda: User.objects.filter(pk=user.pk).update(is_active=False))()
    msg, _ = await client.recv_until(lambda m: m["type"] == "error", wait=timeout(5))
    assert msg["code"] == "unauthorized"
    assert await client.expect_close() == CloseCode.UNAUTHORIZED
