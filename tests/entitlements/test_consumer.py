"""Entitlements on the WebSocket stream, in-process (PROTOCOL.md "Entitlements")."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group
from django.db import connection

from tests.entitlements.conftest import grant, revoke

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("entitlements_on")]


async def subscriptions(client, rid="l") -> list[str]:
    return (await client.request({"op": "list", "id": rid}))["symbols"]


async def test_a_symbol_outside_the_entitlements_is_refused_and_nothing_changes(alice, ticker):
    reply = await alice.request({"op": "subscribe", "symbols": ["AAPL", "JPM", "BTC-USD"], "id": 1})
    assert reply["type"] == "error"
    assert reply["code"] == "not_entitled"
    assert reply["symbols"] == ["JPM", "BTC-USD"]
    assert await subscriptions(alice) == []
    # The entitled ones alone are fine.
    reply = await alice.request({"op": "subscribe", "symbols": ["AAPL", "EUR/USD"], "id": 2})
    assert reply == {"type": "subscribed", "id": 2, "symbols": ["AAPL", "EUR/USD"]}


async def test_unknown_symbol_wins_over_not_entitled(alice):
    reply = await alice.request({"op": "subscribe", "symbols": ["JPM", "NOPE"], "id": 1})
    assert (reply["code"], reply["symbols"]) == ("unknown_symbol", ["NOPE"])


async def test_not_entitled_wins_over_too_many_symbols(alice, settings):
    settings.FEED_MAX_SYMBOLS = 1
    reply = await alice.request({"op": "subscribe", "symbols": ["AAPL", "MSFT", "JPM"], "id": 1})
    assert (reply["code"], reply["symbols"]) == ("not_entitled", ["JPM"])


async def test_a_grant_takes_effect_on_the_next_subscribe(alice, user):
    refused = await alice.request({"op": "subscribe", "symbols": ["JPM"], "id": 1})
    assert refused["code"] == "not_entitled"
    await grant(user=user, exchange="XNYS")
    granted = await alice.request({"op": "subscribe", "symbols": ["JPM"], "id": 2})
    assert granted["type"] == "subscribed"


async def test_with_entitlements_off_everything_is_allowed(alice, settings):
    settings.FEED_ENTITLEMENTS = False
    reply = await alice.request({"op": "subscribe", "symbols": ["JPM", "BTC-USD"], "id": 1})
    assert reply["type"] == "subscribed"


async def quotes_of(client, ticker, symbol: str, *, rounds: int = 40) -> list[dict]:
    """Advance the ticker until ``symbol`` quotes; every message seen up to that quote."""
    seen: list[dict] = []
    for _ in range(rounds):
        await ticker.advance(1.0)
        await client.send({"op": "ping", "id": "p"})
        _, before = await client.recv_until(lambda m: m.get("id") == "p")
        seen += before
        if any(m["type"] == "quote" and m["symbol"] == symbol for m in before):
            return seen
    raise AssertionError(f"no quote of {symbol} in {rounds} s")


async def assert_revoked_then_silent(client, ticker, gone: str, stays: str) -> None:
    status, _ = await client.recv_until(lambda m: m["type"] == "status")
    assert status == {"type": "status", "symbol": gone, "state": "revoked"}
    seen = await quotes_of(client, ticker, stays)
    assert not [m for m in seen if m.get("symbol") == gone]
    assert await subscriptions(client) == [stays]


async def test_deleting_an_entitlement_revokes_its_symbols_on_open_connections(alice, ticker, user):
    await alice.request({"op": "subscribe", "symbols": ["AAPL", "EUR/USD"], "id": 1})
    await quotes_of(alice, ticker, "AAPL")
    await revoke(user=user, exchange="XNAS")
    await assert_revoked_then_silent(alice, ticker, "AAPL", "EUR/USD")


async def test_editing_an_entitlement_revokes_what_it_no_longer_covers(alice, ticker, user):
    await alice.request({"op": "subscribe", "symbols": ["AAPL", "EUR/USD"], "id": 1})

    def move_to_another_venue() -> None:
        row = user.entitlements.get(asset_class="fx")
        row.asset_class, row.exchange = "", "XNYS"
        row.save()

    await database_sync_to_async(move_to_another_venue)()
    await assert_revoked_then_silent(alice, ticker, "EUR/USD", "AAPL")


def join_crypto_desk(user) -> Group:
    desk = Group.objects.create(name="crypto desk")
    desk.entitlements.create(asset_class="crypto")
    user.groups.add(desk)
    return desk


@pytest.mark.parametrize(
    "leave",
    [
        lambda user, desk: desk.user_set.remove(user),
        lambda user, desk: user.groups.remove(desk),
        lambda user, desk: desk.user_set.clear(),
        lambda user, desk: user.groups.clear(),
        lambda user, desk: desk.delete(),
    ],
    ids=[
        "group-removes-user",
        "user-leaves-group",
        "group-cleared",
        "user-groups-cleared",
        "group-deleted",
    ],
)
async def test_leaving_a_group_revokes_what_only_the_group_granted(alice, ticker, user, leave):
    desk = await database_sync_to_async(join_crypto_desk)(user)
    await alice.request({"op": "subscribe", "symbols": ["BTC-USD", "AAPL"], "id": 1})
    await database_sync_to_async(leave)(user, desk)
    await assert_revoked_then_silent(alice, ticker, "BTC-USD", "AAPL")


async def test_another_users_revocation_leaves_this_stream_alone(alice, connect, ticker, user):
    from tests.consumer.conftest import make_user

    bob = await database_sync_to_async(make_user)("bob")
    await grant(user=bob, exchange="XNAS")
    await alice.request({"op": "subscribe", "symbols": ["AAPL"], "id": 1})
    await revoke(user=bob)
    seen = await quotes_of(alice, ticker, "AAPL")
    assert not [m for m in seen if m["type"] == "status"]


async def test_the_periodic_recheck_revokes_when_the_broadcast_was_lost(
    connect, ticker, user, settings
):
    settings.FEED_AUTH_RECHECK_S = 0.2  # before the first connection starts the loop
    alice = await connect()
    assert (await alice.recv())["type"] == "welcome"
    await alice.request({"op": "subscribe", "symbols": ["AAPL", "EUR/USD"], "id": 1})

    def delete_behind_the_orms_back() -> None:  # raw SQL: no signal, no broadcast
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM feeds_entitlement WHERE exchange = 'XNAS'")

    await database_sync_to_async(delete_behind_the_orms_back)()
    await assert_revoked_then_silent(alice, ticker, "AAPL", "EUR/USD")


async def test_a_wildcard_covers_only_the_visible_instruments(alice):
    reply = await alice.request({"op": "subscribe", "symbols": ["*"], "id": 1})
    assert reply["type"] == "subscribed"
    assert sorted(reply["symbols"]) == ["AAPL", "EUR/USD", "MSFT"]


async def test_demoting_a_superuser_revokes_what_their_own_rows_do_not_cover(connect, ticker, user):
    def promote(flag: bool) -> None:
        user.refresh_from_db()
        user.is_superuser = flag
        user.save()

    await database_sync_to_async(promote)(True)
    client = await connect()
    assert (await client.recv())["type"] == "welcome"
    reply = await client.request({"op": "subscribe", "symbols": ["JPM", "AAPL"], "id": 1})
    assert reply["type"] == "subscribed"
    await database_sync_to_async(promote)(False)
    await assert_revoked_then_silent(client, ticker, "JPM", "AAPL")
    reply = await client.request({"op": "subscribe", "symbols": ["JPM"], "id": 2})
    assert reply["code"] == "not_entitled"
