"""Stream semantics of the extensions on a real daphne, with the websockets client, in real time."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.live.test_live_feed import Feed
from tests.timeouts import timeout

pytestmark = pytest.mark.live


def quote_of(symbol: str):
    return lambda m: m["type"] == "quote" and m["symbol"] == symbol


@pytest.fixture
async def warm(server, token):
    """The server has published quotes of every instrument (its store has them for snapshots)."""
    async with websockets.connect(server.ws_url + f"?token={token}") as ws:
        feed = Feed(ws)
        await feed.recv()
        reply = await feed.request({"op": "subscribe", "symbols": ["*"], "id": "warm"})
        waiting = set(reply["symbols"])
        async with asyncio.timeout(timeout(30)):
            while waiting:
                msg = await feed.recv()
                if msg["type"] in ("quote", "snapshot", "status"):
                    waiting.discard(msg["symbol"])


async def test_a_throttled_symbol_updates_at_most_once_per_interval_and_marks_its_gaps(
    server, token, warm
):
    interval_s = 0.5
    async with websockets.connect(server.ws_url + f"?token={token}") as ws:
        feed = Feed(ws)
        await feed.recv()
        await feed.request({"op": "subscribe", "symbols": ["MSFT"], "id": 1})
        msft_snap, _ = await feed.until(lambda m: m["type"] == "snapshot")
        loop = asyncio.get_running_loop()
        started = loop.time()  # before the server sets the throttle: a lower bound holds
        await ws.send(
            json.dumps({"op": "subscribe", "symbols": ["AAPL"], "throttle_ms": 500, "id": 2})
        )
        aapl: list[dict] = []
        msft: list[dict] = []
        while len(aapl) < 5:  # every message from here on, MSFT's quotes included
            msg = await asyncio.wait_for(feed.recv(), timeout(10))
            if msg["type"] == "snapshot":
                aapl_snap = msg
            elif msg["type"] == "quote":
                (aapl if msg["symbol"] == "AAPL" else msft).append(msg)
        elapsed = loop.time() - started
    # AAPL ticks about 8 times a second; the snapshot and five updates, an interval apart...
    assert elapsed >= 5 * interval_s
    # ...each the newest, in order, marked with the seq the client had before it.
    previous = aapl_snap["seq"]
    for quote in aapl:
        assert quote["seq"] > previous
        assert quote.get("prev_seq", quote["seq"] - 1) == previous
        previous = quote["seq"]
    assert any("prev_seq" in q for q in aapl), aapl  # some ticks were skipped
    # The unthrottled symbol on the same connection got every tick, unmarked.
    seqs = [q["seq"] for q in msft]
    assert seqs == list(range(msft_snap["seq"] + 1, msft_snap["seq"] + 1 + len(seqs)))
    assert not any("prev_seq" in q for q in msft)
    assert len(msft) > 2 * len(aapl)


async def test_star_subscribes_every_instrument_and_list_shows_it(server, token, warm):
    async with websockets.connect(server.ws_url + f"?token={token}") as ws:
        feed = Feed(ws)
        await feed.recv()
        reply = await feed.request({"op": "subscribe", "symbols": ["*"], "id": 1})
        symbols = reply["symbols"]
        assert len(symbols) > 10
        assert symbols == sorted(symbols)
        assert "AAPL" in symbols
        starts = {}
        async with asyncio.timeout(timeout(20)):
            while len(starts) < len(symbols):
                msg = await feed.recv()
                if msg["type"] in ("snapshot", "status"):
                    starts[msg["symbol"]] = msg["type"]
        assert set(starts) == set(symbols)
        listed = await feed.request({"op": "list", "id": 2})
        assert listed["symbols"] == ["*", *symbols]
        gone = await feed.request({"op": "unsubscribe", "symbols": ["*"], "id": 3})
        assert gone["symbols"] == symbols
        assert (await feed.request({"op": "list", "id": 4}))["symbols"] == []


async def test_a_reconnecting_client_resumes_without_gap_or_duplicate(server, token, warm):
    url = server.ws_url + f"?token={token}"
    async with websockets.connect(url) as old:
        feed = Feed(old)
        welcome = await feed.recv()
        await feed.request({"op": "subscribe", "symbols": ["AAPL"], "id": 1})
        await feed.until(lambda m: m["type"] == "snapshot")
        last, _ = await feed.until(quote_of("AAPL"))
        # Make before break: the new connection resumes while the old one still reads...
        async with websockets.connect(url) as new:
            resumed = Feed(new)
            await resumed.recv()
            for _ in range(8):  # ...about a second of quotes the new one must replay
                last, _ = await feed.until(quote_of("AAPL"))
            await new.send(
                json.dumps(
                    {"op": "subscribe", "symbols": ["AAPL"], "since": {"AAPL": last["seq"]},
                     "epoch": welcome["epoch"], "id": 2}
                )
            )
            reply, _ = await resumed.until(lambda m: m.get("id") == 2)
            assert reply["recovered"] == {"AAPL": True}
            await old.close()
            seen = []
            while len(seen) < 16:
                msg = await resumed.recv()
                assert msg["type"] != "snapshot", msg
                if msg["type"] == "quote":
                    seen.append(msg)
    seqs = [q["seq"] for q in seen]
    assert seqs == list(range(last["seq"] + 1, last["seq"] + 17))
    assert not any("prev_seq" in q for q in seen)


async def test_a_resume_in_another_epoch_gets_a_snapshot(server, token, warm):
    async with websockets.connect(server.ws_url + f"?token={token}") as ws:
        feed = Feed(ws)
        await feed.recv()
        reply = await feed.request(
            {"op": "subscribe", "symbols": ["AAPL"], "since": {"AAPL": 1}, "epoch": "gone", "id": 1}
        )
        assert reply["recovered"] == {"AAPL": False}
        snap, _ = await feed.until(lambda m: m.get("symbol") == "AAPL")
        assert snap["type"] == "snapshot"


async def test_bad_stream_fields_are_errors_and_the_stream_goes_on(server, token):
    async with websockets.connect(server.ws_url + f"?token={token}") as ws:
        feed = Feed(ws)
        await feed.recv()
        await feed.request({"op": "subscribe", "symbols": ["MSFT"], "id": 1})
        bad_requests = [
            {"throttle_ms": -5}, {"since": {"MSFT": 1}}, {"since": {"AAPL": 1}, "epoch": "e"}
        ]
        for i, bad in enumerate(bad_requests, start=2):
            reply = await feed.request({"op": "subscribe", "symbols": ["MSFT"], "id": i, **bad})
            assert reply["code"] == "bad_request"
        await asyncio.wait_for(feed.until(quote_of("MSFT")), timeout(10))
