"""A real daphne sends only what docs/asyncapi.json describes, every message type of it.

One server of the test's own (a short heartbeat, a halted instrument, a small
per-user connection limit, a one-second shutdown grace) and a session that
makes it send every server message type of the document and most error
codes: subscribe with ``since``, throttle, wildcard, list, ping, watchlists,
errors, unsubscribe, MessagePack, an SSE stream, and a SIGTERM for ``reconnect``.
Every message is checked against the document as it arrives (here, and by
the hook every live test has: tests/conftest.py), and the test then asserts
it saw them all.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from typing import Any

import httpx
import msgpack
import pytest
import websockets

from tests.faults.conftest import feed_server  # noqa: F401 (fixture)
from tests.schema import decode_binary_frame, decode_frame, server_message_types
from tests.sse.client import Reader
from tests.timeouts import timeout

pytestmark = pytest.mark.live

HALTED = "NVDA"
PREPARE = (
    "from feeds.models import Instrument as I\n"
    f"I.objects.filter(symbol={HALTED!r}).update(active=False)\n"
)
ENV = {
    "FEED_HEARTBEAT_S": "0.5",
    "FEED_MAX_CONNECTIONS_PER_USER": "4",
    "FEED_RECONNECT_GRACE_S": "1",
}
RATES = {"AAPL": 20.0, "MSFT": 40.0, "EUR/USD": 20.0}


class Session:
    """One WebSocket; every message it receives is checked and kept."""

    def __init__(self, ws: Any, seen: list[dict[str, Any]]) -> None:
        self.ws, self.seen, self.pending = ws, seen, []

    async def recv(self) -> dict[str, Any]:
        while not self.pending:
            frame = await asyncio.wait_for(self.ws.recv(), timeout(10))
            msgs = decode_binary_frame(frame) if isinstance(frame, bytes) else decode_frame(frame)
            self.seen.extend(msgs)
            self.pending.extend(msgs)
        return self.pending.pop(0)

    async def until(self, pred) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        while True:
            msg = await self.recv()
            if pred(msg):
                return msg

    async def request(self, obj: dict[str, Any], *, packed: bool = False) -> dict[str, Any]:
        await self.ws.send(msgpack.packb(obj) if packed else json.dumps(obj))
        return await self.until(lambda m: m.get("id") == obj["id"])

    async def closed(self) -> int:
        """Read to the close; its code."""
        try:
            while True:
                await self.recv()
        except websockets.ConnectionClosed:
            pass
        assert self.ws.close_code is not None
        return self.ws.close_code


async def test_the_server_sends_every_message_of_the_document_and_no_other(feed_server):  # noqa: F811
    feed = feed_server(env_extra=ENV, rates=RATES, prepare=PREPARE)
    url, auth = f"ws://127.0.0.1:{feed.port}/ws/quotes/", {"Authorization": f"Token {feed.token}"}
    seen: list[dict[str, Any]] = []

    # An unknown format: one error, then 1003 (before any connection counts against the limit).
    async with websockets.connect(url + "?format=xml", additional_headers=auth) as ws:
        bad_format = Session(ws, seen)
        assert (await bad_format.recv())["code"] == "bad_request"
        assert await bad_format.closed() == 1003

    # Authentication by message, failed: unauthorized, then 4401.
    async with websockets.connect(url) as ws:
        anonymous = Session(ws, seen)
        await ws.send(json.dumps({"op": "auth", "token": "not-a-token", "id": "who"}))
        assert (await anonymous.recv())["code"] == "unauthorized"
        assert await anonymous.closed() == 4401

    async with websockets.connect(url, additional_headers=auth) as ws:
        main = Session(ws, seen)
        welcome = await main.recv()
        assert welcome["type"] == "welcome"

        named = {"op": "subscribe", "symbols": ["AAPL", "eur/usd", HALTED], "id": 1}
        reply = await main.request(named)
        assert reply["symbols"] == ["AAPL", "EUR/USD", HALTED]
        assert (await main.until(lambda m: m["type"] == "status"))["state"] == "halted"
        quote = await main.until(lambda m: m["type"] == "quote" and m["symbol"] == "AAPL")

        # Resume on the same connection: the quotes after `since` again, and `recovered`.
        since = {"op": "subscribe", "symbols": ["AAPL"], "since": {"AAPL": quote["seq"] - 1},
                 "epoch": welcome["epoch"], "id": 2}
        assert (await main.request(since))["recovered"] == {"AAPL": True}

        # A throttle: quotes skipped in between, marked with prev_seq.
        throttled = {"op": "subscribe", "symbols": ["MSFT"], "throttle_ms": 300, "id": 3}
        assert (await main.request(throttled))["type"] == "subscribed"
        await main.until(lambda m: m["type"] == "quote" and "prev_seq" in m)

        assert (await main.request({"op": "list", "id": 4}))["type"] == "subscriptions"
        assert (await main.request({"op": "ping", "id": 5}))["type"] == "pong"

        # Watchlists (an extension): the user's lists now, and again once one is written.
        assert (await main.request({"op": "watchlists", "id": 12}))["lists"] == []
        async with httpx.AsyncClient(timeout=timeout(10)) as http:
            made = await http.post(
                f"{feed.server.url}/api/watchlists/", headers=auth,
                json={"name": "Contract", "symbols": ["AAPL"]},
            )
        assert made.status_code == 201, made.text
        pushed = await main.until(lambda m: m["type"] == "watchlists" and "id" not in m)
        assert pushed["lists"] == [made.json()]

        # Errors that leave the connection open.
        await ws.send("{nope")
        assert (await main.until(lambda m: m["type"] == "error"))["code"] == "bad_json"
        assert (await main.request({"op": "dance", "id": 6}))["code"] == "bad_request"
        await ws.send(b"\x81\x00")  # a binary frame on a JSON connection
        assert (await main.until(lambda m: m["type"] == "error"))["code"] == "bad_request"
        unknown = await main.request({"op": "subscribe", "symbols": ["NOPE"], "id": 7})
        assert (unknown["code"], unknown["symbols"]) == ("unknown_symbol", ["NOPE"])

        gone = await main.request({"op": "unsubscribe", "symbols": ["AAPL"], "id": 8})
        assert gone["type"] == "unsubscribed"

        # The wildcard: every instrument, "*" in the list, then everything off.
        everything = await main.request({"op": "subscribe", "symbols": ["*"], "id": 9})
        assert len(everything["symbols"]) > 10
        assert (await main.request({"op": "list", "id": 10}))["symbols"][0] == "*"
        await main.request({"op": "unsubscribe", "symbols": ["*"], "id": 11})

        # More requests at once than the burst allows: some are rate_limited.
        for n in range(60):
            await ws.send(json.dumps({"op": "ping", "id": 100 + n}))
        answers = [await main.until(lambda m, n=n: m.get("id") == 100 + n) for n in range(60)]
        assert "rate_limited" in {a.get("code") for a in answers}

        # MessagePack: the same messages as binary frames.
        packed_url = url + "?format=msgpack"
        async with websockets.connect(packed_url, additional_headers=auth) as packed_ws:
            packed = Session(packed_ws, seen)
            assert (await packed.recv())["type"] == "welcome"
            request = {"op": "subscribe", "symbols": ["EUR/USD"], "id": 1}
            assert (await packed.request(request, packed=True))["type"] == "subscribed"
            await packed.until(lambda m: m["type"] == "quote")

            # The SSE stream: the same messages, one per event (and one more connection).
            async with httpx.AsyncClient(timeout=timeout(10)) as http, http.stream(
                "GET", f"{feed.server.url}/sse/quotes/?symbols=AAPL,{HALTED}", headers=auth
            ) as response:
                assert response.status_code == 200
                reader = Reader(response)
                try:
                    kinds = ("welcome", "subscribed", "snapshot", "status", "quote")
                    events = await reader.take(5, kinds, timeout(20))
                    seen.extend(event.message for event in events)
                    assert {"welcome", "subscribed", "status"} <= {e.event for e in events}

                    # A quiet connection gets heartbeats; it is the user's fourth.
                    async with websockets.connect(url, additional_headers=auth) as quiet_ws:
                        quiet = Session(quiet_ws, seen)
                        await quiet.until(lambda m: m["type"] == "heartbeat")

                        # The fifth: too_many_connections, then 4429.
                        async with websockets.connect(url, additional_headers=auth) as extra_ws:
                            extra = Session(extra_ws, seen)
                            assert (await extra.recv())["code"] == "too_many_connections"
                            assert await extra.closed() == 4429

                        # A frame over the limit: message_too_large, then 1009.
                        await quiet_ws.send("x" * 70_000)
                        too_large = await quiet.until(lambda m: m["type"] == "error")
                        assert too_large["code"] == "message_too_large"
                        assert await quiet.closed() == 1009
                finally:
                    await reader.aclose()

    # A shutdown: reconnect first, then 1001 (on a connection of its own, subscribed).
    async with websockets.connect(url, additional_headers=auth) as ws:
        last = Session(ws, seen)
        await last.request({"op": "subscribe", "symbols": ["AAPL"], "id": 1})
        assert feed.server.proc is not None
        feed.server.proc.send_signal(signal.SIGTERM)
        assert (await last.until(lambda m: m["type"] == "reconnect"))["reason"] == "shutdown"
        assert await last.closed() == 1001

    types = Counter(m["type"] for m in seen)
    assert set(types) == set(server_message_types()), set(server_message_types()) - set(types)
    codes = {m["code"] for m in seen if m["type"] == "error"}
    assert codes >= {
        "bad_json", "bad_request", "unknown_symbol", "rate_limited", "unauthorized",
        "too_many_connections", "message_too_large",
    }
