"""Make-before-break against a real daphne: ``reconnect`` for a connection past its maximum age,
and a client that moves on it with ``since`` and loses not one quote."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.faults.test_shutdown import close_code
from tests.schema import decode_frame
from tests.timeouts import timeout

pytestmark = pytest.mark.live

SYMBOLS = ["AAPL", "MSFT", "EUR/USD", "BTC-USD"]
RATES = dict.fromkeys(SYMBOLS, 50.0)


class Watcher:
    """A client's view of the stream: the last seq per symbol, and every break in it."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.epoch = ""
        self.gaps: list[tuple[str, int, int]] = []
        self.quotes = 0

    def see(self, msg: dict) -> None:
        if msg["type"] == "welcome":
            self.epoch = msg["epoch"]
        elif msg["type"] == "snapshot":
            self.last[msg["symbol"]] = msg["seq"]
        elif msg["type"] == "quote":
            before = self.last.get(msg["symbol"])
            if msg["seq"] != (before or 0) + 1 or "prev_seq" in msg:
                self.gaps.append((msg["symbol"], before or 0, msg["seq"]))
            self.last[msg["symbol"]] = msg["seq"]
            self.quotes += 1


async def until(ws: websockets.ClientConnection, watcher: Watcher, kind: str) -> dict:
    """Read ``ws`` up to the frame with the first message of type ``kind``.

    The watcher sees every message.
    """
    while True:
        batch = decode_frame(await asyncio.wait_for(ws.recv(), timeout(10)))
        for msg in batch:
            watcher.see(msg)
        found = [msg for msg in batch if msg["type"] == kind]
        if found:
            return found[0]



async def test_a_connection_past_its_max_age_is_asked_to_reconnect_then_closed_1001(feed_server):
    feed = feed_server(env_extra={"FEED_MAX_CONNECTION_AGE_S": "1", "FEED_RECONNECT_GRACE_S": "1"})
    watcher = Watcher()
    async with websockets.connect(feed.server.ws_url + f"?token={feed.token}") as ws:
        await until(ws, watcher, "welcome")
        announcement = await until(ws, watcher, "reconnect")
        assert announcement == {"type": "reconnect", "within_s": 1, "reason": "max_age"}
        assert await asyncio.wait_for(close_code(ws), timeout(10)) == 1001
    assert feed.server.proc.poll() is None  # only the connection went, not the server


async def test_a_client_that_moves_on_reconnect_with_since_misses_no_quote(feed_server):
    feed = feed_server(
        rates=RATES, env_extra={"FEED_MAX_CONNECTION_AGE_S": "2", "FEED_RECONNECT_GRACE_S": "10"}
    )
    url = feed.server.ws_url + f"?token={feed.token}"
    watcher = Watcher()
    old = await websockets.connect(url)
    try:
        await until(old, watcher, "welcome")
        await old.send(json.dumps({"op": "subscribe", "symbols": SYMBOLS, "id": 1}))
        await until(old, watcher, "reconnect")  # quotes flow meanwhile, for two seconds
        since = dict(watcher.last)  # from here on the client reads the new connection only
        async with websockets.connect(url) as new:
            await until(new, Watcher(), "welcome")
            request = {
                "op": "subscribe",
                "symbols": SYMBOLS,
                "since": since,
                "epoch": watcher.epoch,
                "id": 2,
            }
            await new.send(json.dumps(request))
            reply = await until(new, watcher, "subscribed")
            await old.close()
            while any(watcher.last[s] < since[s] + 100 for s in SYMBOLS):  # well past the switch
                await until(new, watcher, "quote")
    finally:
        await old.close()
    assert reply["recovered"] == dict.fromkeys(SYMBOLS, True)
    assert set(since) == set(SYMBOLS)
    assert watcher.quotes > 400
    assert watcher.gaps == []  # every seq of every symbol, once, in order
