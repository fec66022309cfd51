"""Stream semantics of the extensions in-process (PROTOCOL.md, "Extensions").

Throttle, wildcard, prev_seq and resume.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from feeds import services
from feeds.core import events
from feeds.core.groups import group_for_symbol
from feeds.models import Instrument
from feeds.publish.store import MemoryStore
from tests.consumer.conftest import deactivate
from tests.timeouts import timeout

pytestmark = pytest.mark.django_db(transaction=True)


def is_quote(symbol: str):
    return lambda m: m["type"] == "quote" and m["symbol"] == symbol


async def quotes_until(client, symbol: str, seq: int) -> list[dict]:
    """Every message up to and including ``symbol``'s quote of ``seq`` (or a later one)."""
    seen = []
    while True:
        msg = await client.recv()
        seen.append(msg)
        if msg["type"] == "quote" and msg["symbol"] == symbol and msg["seq"] >= seq:
            return seen


def assert_follows_on(messages: list[dict], symbol: str, start: int) -> None:
    """``symbol``'s quotes among ``messages`` are start+1, start+2, ... with no prev_seq."""
    seqs = [m["seq"] for m in messages if m["type"] == "quote" and m["symbol"] == symbol]
    assert seqs == list(range(start + 1, start + 1 + len(seqs))), seqs
    assert not any("prev_seq" in m for m in messages if m.get("symbol") == symbol)


# --- throttle ----------------------------------------------------------------------------


async def test_a_throttled_symbol_gets_only_the_newest_quote_once_its_interval_is_over(
    alice, ticker
):
    await ticker.advance(10)
    await alice.request({"op": "subscribe", "symbols": ["MSFT"], "id": 1})
    msft = (await alice.recv())["seq"]
    loop = asyncio.get_running_loop()
    asked = loop.time()
    await alice.request({"op": "subscribe", "symbols": ["AAPL"], "throttle_ms": 1500, "id": 2})
    snap = await alice.recv()
    assert snap["type"] == "snapshot"
    assert snap["symbol"] == "AAPL"
    for _ in range(3):
        await ticker.advance(10)
    newest = ticker.books["AAPL"].seq
    assert newest > snap["seq"] + 1  # several AAPL quotes were published
    quote, before = await alice.recv_until(is_quote("AAPL"), wait=10)
    assert loop.time() - asked >= 1.5
    assert quote["seq"] == newest
    assert quote["prev_seq"] == snap["seq"]
    assert_follows_on(before, "MSFT", msft)  # the unthrottled symbol got every tick, shared text
    assert len([m for m in before if m["type"] == "quote"]) == ticker.books["MSFT"].seq - msft


async def test_a_later_subscribe_replaces_the_throttle(alice, ticker):
    await ticker.advance(10)
    await alice.request({"op": "subscribe", "symbols": ["AAPL"], "throttle_ms": 60000, "id": 1})
    await alice.recv()
    await alice.request({"op": "subscribe", "symbols": ["AAPL"], "id": 2})  # default 0: every tick
    snap, _ = await alice.recv_until(lambda m: m["type"] == "snapshot")
    await ticker.advance(10)
    seen = await quotes_until(alice, "AAPL", ticker.books["AAPL"].seq)
    assert_follows_on(seen, "AAPL", snap["seq"])


@pytest.mark.parametrize("value", [-1, 60001, 2.5, "250", True, None])
async def test_a_bad_throttle_is_bad_request_naming_it_and_changes_nothing(alice, ticker, value):
    reply = await alice.request(
        {"op": "subscribe", "symbols": ["AAPL"], "throttle_ms": value, "id": 1}
    )
    assert reply["code"] == "bad_request"
    assert "throttle_ms" in reply["message"]
    assert (await alice.request({"op": "list", "id": 2}))["symbols"] == []


async def test_unsubscribe_drops_a_held_throttled_quote(alice, ticker):
    await ticker.advance(10)
    await alice.request({"op": "subscribe", "symbols": ["AAPL"], "throttle_ms": 300, "id": 1})
    await alice.recv()
    # MSFT's interval ends after AAPL's: once its quote is here, AAPL's timer has run.
    await alice.request({"op": "subscribe", "symbols": ["MSFT"], "throttle_ms": 900, "id": 2})
    await alice.recv()
    await ticker.advance(10)
    await alice.request({"op": "unsubscribe", "symbols": ["AAPL"], "id": 3})
    msft, before = await alice.recv_until(is_quote("MSFT"), wait=10)
    assert msft["seq"] == ticker.books["MSFT"].seq
    assert not [m for m in before if m.get("symbol") == "AAPL"], before


async def test_a_held_throttled_quote_goes_out_before_a_halt_of_its_symbol(alice, ticker):
    await ticker.advance(10)
    await alice.request({"op": "subscribe", "symbols": ["AAPL"], "throttle_ms": 60000, "id": 1})
    await alice.recv()
    await ticker.advance(10)
    newest = ticker.books["AAPL"].seq
    await deactivate("AAPL", False)
    await ticker.reload()
    status, before = await alice.recv_until(lambda m: m["type"] == "status")
    assert status["state"] == "halted"
    assert [m["seq"] for m in before if m["type"] == "quote"] == [newest]


# --- wildcard ----------------------------------------------------------------------------


all_symbols = database_sync_to_async(
    lambda: sorted(Instrument.objects.values_list("symbol", flat=True))
)


async def test_star_subscribes_every_instrument_named_ones_first(alice, ticker):
    await ticker.advance(10)
    every = await all_symbols()
    reply = await alice.request({"op": "subscribe", "symbols": ["msft", "*"], "id": 1})
    assert reply["symbols"] == ["MSFT"] + [s for s in every if s != "MSFT"]
    snaps = [await alice.recv() for _ in every]
    assert {m["symbol"] for m in snaps} == set(every)
    assert {m["type"] for m in snaps} == {"snapshot"}
    listed = await alice.request({"op": "list", "id": 2})
    assert listed["symbols"] == ["*", *every]


async def test_star_covers_halted_instruments_with_their_status(alice, ticker):
    await deactivate("BTC-USD", False)
    await ticker.reload()
    await alice.request({"op": "subscribe", "symbols": ["*"], "id": 1})
    status, _ = await alice.recv_until(lambda m: m["type"] == "status")
    assert status == {"type": "status", "symbol": "BTC-USD", "state": "halted"}


async def test_star_over_max_symbols_is_too_many_symbols_and_changes_nothing(
    alice, ticker, settings
):
    every = await all_symbols()
    settings.FEED_MAX_SYMBOLS = len(every) - 1
    reply = await alice.request({"op": "subscribe", "symbols": ["*"], "id": 1})
    assert reply["code"] == "too_many_symbols"
    assert sorted(reply["symbols"]) == every
    assert (await alice.request({"op": "list", "id": 2}))["symbols"] == []


async def test_unsubscribe_star_ends_the_wildcard_and_every_subscription(alice, ticker):
    await alice.request({"op": "subscribe", "symbols": ["*", "AAPL"], "id": 1})
    reply = await alice.request({"op": "unsubscribe", "symbols": ["*"], "id": 2})
    assert reply["symbols"] == await all_symbols()
    assert (await alice.request({"op": "list", "id": 3}))["symbols"] == []


async def test_since_with_star_may_name_only_symbols_it_covers(alice, ticker):
    epoch = await ticker.store.epoch()
    ok = await alice.request(
        {"op": "subscribe", "symbols": ["*"], "since": {"AAPL": 0}, "epoch": epoch, "id": 1}
    )
    assert ok["type"] == "subscribed"
    assert ok["recovered"] == {"AAPL": True}
    bad = await alice.request(
        {"op": "subscribe", "symbols": ["*"], "since": {"NOPE": 0}, "epoch": epoch, "id": 2}
    )
    assert bad["code"] == "bad_request"


def _create(symbol: str) -> Instrument:
    return services.instrument_save(
        instrument=Instrument(
            symbol=symbol, name=symbol, exchange="TEST", asset_class="equity", currency="USD",
            tick_size=Decimal("0.01"), lot_size=1, reference_price=Decimal("10.00"),
            volatility=0.2, quote_rate=5.0, active=True,
        )
    )


create = database_sync_to_async(_create)


async def test_a_new_instrument_joins_star_subscriptions_and_only_them(connect, ticker):
    """The ticker tells the servers of symbols new to the table; "*" connections join them."""
    star, named, ended = await connect(), await connect(), await connect()
    for client in (star, named, ended):
        await client.recv()
    await star.request({"op": "subscribe", "symbols": ["*"], "throttle_ms": 0, "id": 1})
    await named.request({"op": "subscribe", "symbols": ["AAPL"], "id": 1})
    await ended.request({"op": "subscribe", "symbols": ["*"], "id": 1})
    await ended.request({"op": "unsubscribe", "symbols": ["*"], "id": 2})
    await create("NEWCO")
    await ticker.reload()  # as on the admin's control message, or the ticker's poll
    joined, _ = await star.recv_until(
        lambda m: m["type"] == "subscribed" and "id" not in m, wait=10
    )
    assert joined == {"type": "subscribed", "symbols": ["NEWCO"]}
    await ticker.advance(10)
    first, _ = await star.recv_until(is_quote("NEWCO"))
    assert first["seq"] == 1
    assert "prev_seq" not in first
    # The others heard the same broadcast in the same pass and took nothing in.
    assert "NEWCO" not in (await named.request({"op": "list", "id": 3}))["symbols"]
    assert (await ended.request({"op": "list", "id": 3}))["symbols"] == []


async def test_a_new_instrument_past_max_symbols_is_named_in_an_error(alice, ticker, settings):
    settings.FEED_MAX_SYMBOLS = len(await all_symbols())
    await alice.request({"op": "subscribe", "symbols": ["*"], "id": 1})
    await create("NEWCO")
    await ticker.reload()
    error, _ = await alice.recv_until(lambda m: m["type"] == "error", wait=10)
    assert error["code"] == "too_many_symbols"
    assert error["symbols"] == ["NEWCO"]
    assert "id" not in error
    assert "NEWCO" not in (await alice.request({"op": "list", "id": 2}))["symbols"]


# --- prev_seq ----------------------------------------------------------------------------


async def test_a_quote_lost_upstream_arrives_marked_with_the_seq_the_client_had(connect, ticker):
    a, b = await connect(), await connect()
    for client in (a, b):
        await client.recv()
    await ticker.advance(10)
    for client in (a, b):
        await client.request({"op": "subscribe", "symbols": ["AAPL"], "id": 1})
    snap = await a.recv()
    await b.recv()
    # A quote the layer dropped: the next one to arrive skips a seq.
    seq, text = (await ticker.store.latest(["AAPL"]))["AAPL"]
    skipped = text.replace(f'"seq":{seq},', f'"seq":{seq + 2},')
    await get_channel_layer().group_send(
        group_for_symbol("AAPL"),
        events.quote(symbol="AAPL", seq=seq + 2, text=skipped, epoch=snap["epoch"]),
    )
    for client in (a, b):
        quote, _ = await client.recv_until(is_quote("AAPL"))
        assert quote["seq"] == snap["seq"] + 2
        assert quote["prev_seq"] == snap["seq"]


# --- resume ------------------------------------------------------------------------------


async def _follow(client, ticker, symbol: str) -> tuple[int, str]:
    """Subscribe, read until a live quote, and return (its seq, the epoch)."""
    await client.request({"op": "subscribe", "symbols": [symbol], "id": "f"})
    snap = await client.recv()
    await ticker.advance(10)
    quote, _ = await client.recv_until(is_quote(symbol))
    return quote["seq"], snap["epoch"]


async def test_resume_sends_the_missed_quotes_then_live_ones_without_gap_or_duplicate(
    connect, ticker
):
    await ticker.advance(10)
    first = await connect()
    await first.recv()
    last, epoch = await _follow(first, ticker, "AAPL")
    for _ in range(3):  # quotes the client misses while it reconnects
        await ticker.advance(10)
    missed_to = ticker.books["AAPL"].seq
    second = await connect()
    await second.recv()
    reply = await second.request(
        {
            "op": "subscribe",
            "symbols": ["AAPL", "MSFT"],
            "since": {"aapl": last},
            "epoch": epoch,
            "id": 1,
        }
    )
    assert reply["recovered"] == {"AAPL": True}
    assert reply["symbols"] == ["AAPL", "MSFT"]
    await ticker.advance(10)
    seen = await quotes_until(second, "AAPL", ticker.books["AAPL"].seq)
    assert not [m for m in seen if m["type"] == "snapshot" and m["symbol"] == "AAPL"]
    assert next(m["type"] for m in seen if m.get("symbol") == "MSFT") == "snapshot"
    assert_follows_on(seen, "AAPL", last)
    assert missed_to < ticker.books["AAPL"].seq  # live quotes followed the replay


@pytest.mark.parametrize("why", ["another epoch", "ahead of the store"])
async def test_resume_that_cannot_be_served_is_recovered_false_and_a_snapshot(alice, ticker, why):
    await ticker.advance(10)
    epoch = await ticker.store.epoch()
    since, sent_epoch = ticker.books["AAPL"].seq, epoch
    if why == "another epoch":
        sent_epoch = "not-" + epoch
        since -= 1
    else:
        since += 100
    reply = await alice.request(
        {
            "op": "subscribe",
            "symbols": ["AAPL"],
            "since": {"AAPL": since},
            "epoch": sent_epoch,
            "id": 1,
        }
    )
    assert reply["recovered"] == {"AAPL": False}
    snap = await alice.recv()
    assert snap["type"] == "snapshot"
    assert snap["seq"] == ticker.books["AAPL"].seq


async def test_resume_past_the_ring_is_recovered_false_and_a_snapshot(alice, ticker, settings):
    await ticker.advance(10)
    since = ticker.books["AAPL"].seq
    epoch = await ticker.store.epoch()
    while ticker.books["AAPL"].seq - since <= settings.FEED_RESUME_RING:
        await ticker.advance(10)
    reply = await alice.request(
        {"op": "subscribe", "symbols": ["AAPL"], "since": {"AAPL": since}, "epoch": epoch, "id": 1}
    )
    assert reply["recovered"] == {"AAPL": False}
    assert (await alice.recv())["type"] == "snapshot"


@pytest.mark.parametrize(
    "extra",
    [
        {"since": {"AAPL": 1}},  # no epoch
        {"since": {"MSFT": 1}, "epoch": "e"},  # not among the symbols
        {"since": {"AAPL": -1}, "epoch": "e"},
        {"since": {"AAPL": 1}, "epoch": 5},
    ],
)
async def test_a_bad_resume_is_bad_request_and_changes_nothing(alice, ticker, extra):
    reply = await alice.request({"op": "subscribe", "symbols": ["AAPL"], "id": 1, **extra})
    assert reply["code"] == "bad_request"
    assert reply["id"] == 1
    assert (await alice.request({"op": "list", "id": 2}))["symbols"] == []


class GatedStore(MemoryStore):
    """A memory store whose replay reads at once and answers when the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.reading = asyncio.Event()

    async def replay(self, since):
        found = await super().replay(since)
        self.reading.set()
        await self.gate.wait()
        return found


@pytest.fixture
def gated():
    import feeds.publish.build

    store = feeds.publish.build._store = GatedStore()
    return store


async def test_quotes_published_during_the_replay_read_follow_it_without_gap(gated, alice, ticker):
    assert ticker.store is gated
    await ticker.advance(10)
    since = ticker.books["AAPL"].seq
    await ticker.advance(10)
    await alice.send(
        {"op": "subscribe", "symbols": ["AAPL"], "since": {"AAPL": since},
         "epoch": await gated.epoch(), "id": 1}
    )
    await asyncio.wait_for(gated.reading.wait(), timeout(5))
    for _ in range(2):  # published while the replay is on its way: held back, not lost
        await ticker.advance(10)
    gated.gate.set()
    seen = await quotes_until(alice, "AAPL", ticker.books["AAPL"].seq)
    reply = seen.pop(0)
    assert reply["type"] == "subscribed"
    assert reply["recovered"] == {"AAPL": True}
    assert_follows_on(seen, "AAPL", since)
