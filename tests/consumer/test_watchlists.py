"""The ``watchlists`` op on the WebSocket, in-process (PROTOCOL.md "Watchlists")."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from feeds import watchlists
from feeds.models import Watchlist
from tests.consumer.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def create(user, name: str, symbols: list[str]) -> Watchlist:
    return watchlists.create(user, name=name, symbols=symbols)


@database_sync_to_async
def update(user, row: Watchlist, **fields) -> Watchlist:
    return watchlists.update(user, row, **fields)


@database_sync_to_async
def delete(user, row: Watchlist) -> None:
    watchlists.delete(user, row)


def is_watchlists(msg) -> bool:
    return msg["type"] == "watchlists"


async def test_the_request_answers_with_the_users_lists(alice, user, instruments):
    reply = await alice.request({"op": "watchlists", "id": 1})
    assert reply == {"type": "watchlists", "id": 1, "lists": []}
    await create(user, "Main", ["eur/usd", "AAPL"])
    await create(user, "Crypto", ["BTC-USD"])
    reply = await alice.request({"op": "watchlists", "id": 2, "follow": False})
    assert [(w["name"], w["symbols"]) for w in reply["lists"]] == [
        ("Main", ["EUR/USD", "AAPL"]),
        ("Crypto", ["BTC-USD"]),
    ]


async def test_a_follower_gets_every_change_and_others_get_nothing(connect, user, instruments):
    follower = await connect()
    await follower.recv()  # welcome
    plain = await connect()
    await plain.recv()
    await follower.request({"op": "watchlists", "id": "w"})

    row = await create(user, "Main", ["AAPL"])
    pushed, _ = await follower.recv_until(is_watchlists)
    assert "id" not in pushed
    assert [(w["id"], w["symbols"]) for w in pushed["lists"]] == [(row.pk, ["AAPL"])]

    await update(user, row, symbols=["MSFT", "AAPL"])
    pushed, _ = await follower.recv_until(is_watchlists)
    assert pushed["lists"][0]["symbols"] == ["MSFT", "AAPL"]

    await delete(user, row)
    pushed, _ = await follower.recv_until(is_watchlists)
    assert pushed["lists"] == []

    # The connection that never asked saw none of it: its replies come straight on.
    await plain.send({"op": "ping", "id": "p"})
    _, before = await plain.recv_until(lambda m: m.get("id") == "p")
    assert not [m for m in before if is_watchlists(m)]


async def test_another_users_change_is_not_sent(alice, user, instruments):
    await alice.request({"op": "watchlists", "id": "w"})
    bob = await database_sync_to_async(make_user)("bob")
    await create(bob, "Bob's", ["AAPL"])
    # Alice's own change comes after bob's: the first watchlists she sees is hers.
    await create(user, "Alice's", ["MSFT"])
    pushed, _ = await alice.recv_until(is_watchlists)
    assert [w["name"] for w in pushed["lists"]] == ["Alice's"]


async def test_follow_false_stops_the_changes(alice, user, instruments):
    await alice.request({"op": "watchlists", "id": 1})
    await alice.request({"op": "watchlists", "id": 2, "follow": False})
    await create(user, "Main", ["AAPL"])
    await alice.request({"op": "watchlists", "id": 3})  # follows again, and reads the list
    row = await database_sync_to_async(Watchlist.objects.get)(name="Main")
    await update(user, row, name="Renamed")
    pushed, before = await alice.recv_until(lambda m: is_watchlists(m) and "id" not in m)
    assert [w["name"] for w in pushed["lists"]] == ["Renamed"]
    # Between the stop and the new request, the creation was not pushed.
    assert not [m for m in before if is_watchlists(m) and "id" not in m]


async def test_a_bad_follow_is_bad_request_and_the_stream_goes_on(alice):
    reply = await alice.request({"op": "watchlists", "id": 1, "follow": "yes"})
    assert reply["type"] == "error"
    assert reply["code"] == "bad_request"
    assert (await alice.request({"op": "ping", "id": 2}))["type"] == "pong"
