"""The server adapter's contract, held against the installed daphne, Twisted and autobahn.

feeds/deliver/server.py takes from under daphne what ASGI does not carry: a
direct write path, back-pressure, the 1001 close. None of it is a public API
of the libraries, so a dependency upgrade may take any of it away; the adapter
then falls back and says so (feeds/deliver/server_check.py). This test makes
such an upgrade fail here, on a real daphne process: the adapter must report
every feature in effect and nothing missing (staff /healthz and /metrics),
must have written to clients directly, a stalled reader must be conflated
(the server counts it, the reader sees a seq gap marked with ``prev_seq``)
rather than replayed from a buffer, and SIGTERM must close a WebSocket with
1001, a stalled one included.
"""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
import websockets

from feeds.deliver.server_check import FEATURES
from tests.faults.conftest import Feed, base_env, daphne, set_quote_rates
from tests.faults.rawws import TEXT, RawClient
from tests.live.reader import Reader
from tests.metrics.test_metrics import sample, scrape
from tests.schema import decode_frame
from tests.servers import free_port, manage
from tests.sse.client import Reader as EventReader
from tests.timeouts import stop, timeout

pytestmark = pytest.mark.live

SYMBOLS = ["AAPL", "MSFT", "EUR/USD", "BTC-USD"]
RATE_PER_SYMBOL = 250.0  # quotes/s: 1,000 quotes/s over the four
STALL_QUOTES = 3000  # far more than the socket and write buffers hold
# The server's buffers for a stalled client: what a reader must not be sent in full.
SERVER_BUFFERS = {"FEED_WRITE_BUFFER_BYTES": "4096", "FEED_SOCKET_BUFFER_BYTES": "16384"}


def start(var_dir, **env_extra: str) -> Feed:  # type: ignore[no-untyped-def]
    """A daphne as run.py runs it, its four symbols quoting fast, with a staff token."""
    env = base_env(var_dir, **SERVER_BUFFERS, **env_extra)
    manage(env, "migrate", "--noinput")
    token = manage(env, "feeduser", "contractstaff", "--password", "contract-pass-1", "--superuser")
    set_quote_rates(env, {s: RATE_PER_SYMBOL for s in SYMBOLS})
    server = daphne(env, free_port())
    try:
        server.start()
    except BaseException:  # not ready: stop what did start
        server.stop()
        raise
    return Feed(server=server, token=token.strip().splitlines()[-1], env=env)


@pytest.fixture(scope="module")
def feed(tmp_path_factory) -> Iterator[Feed]:
    started = start(tmp_path_factory.mktemp("contract-var"))
    yield started
    started.server.stop()


@pytest.fixture
def own_feed(tmp_path) -> Iterator[Feed]:
    """A server of the test's own, with no reconnect grace: for a test that ends it."""
    started = start(tmp_path / "var", FEED_RECONNECT_GRACE_S="0")
    yield started
    started.server.stop()


def staff_health(feed: Feed) -> dict:
    request = urllib.request.Request(
        feed.server.url + "/healthz", headers={"Authorization": f"Token {feed.token}"}
    )
    with urllib.request.urlopen(request, timeout=timeout(10)) as response:
        return json.loads(response.read())


async def first_quote(ws: websockets.ClientConnection) -> dict:
    while True:
        for msg in decode_frame(await asyncio.wait_for(ws.recv(), timeout(10))):
            if msg["type"] == "quote":
                return msg


async def stalled(feed: Feed) -> tuple[RawClient, dict[str, int]]:
    """A raw client with a small receive buffer, subscribed, that reads nothing from now on.

    Returns it and the last seq it read of each symbol (whole frames: nothing read is lost).
    """
    client = RawClient(feed.port, feed.token, rcvbuf=4096)
    await client.connect()
    client.send({"op": "subscribe", "symbols": SYMBOLS, "id": 1})
    had: dict[str, int] = {}
    async with asyncio.timeout(timeout(20)):
        while len(had) < len(SYMBOLS):
            opcode, payload = await client.frame()
            for msg in decode_frame(payload.decode()) if opcode == TEXT else ():
                if msg["type"] in ("snapshot", "quote"):
                    had[msg["symbol"]] = msg["seq"]
    return client, had


async def test_daphne_serves_with_the_fast_path_back_pressure_and_close_codes(feed):
    async with websockets.connect(feed.server.ws_url + f"?token={feed.token}") as ws:
        await ws.send(json.dumps({"op": "subscribe", "symbols": SYMBOLS[:2], "id": 1}))
        await first_quote(ws)  # the connection was attached: its own objects were checked too
        async with httpx.AsyncClient(timeout=timeout(10)) as client, client.stream(
            "GET", f"{feed.server.url}/sse/quotes/?symbols=AAPL",
            headers={"Authorization": f"Token {feed.token}"},
        ) as response:
            events = EventReader(response)
            try:
                await events.take(1, ("quote",), timeout(10))
            finally:
                await events.aclose()
        health = await asyncio.to_thread(staff_health, feed)
        figures = await asyncio.to_thread(scrape, feed.server.url, feed.token)
    assert health["server"] == {
        "server": "daphne", **dict.fromkeys(FEATURES, True), "degraded": False, "missing": [],
    }
    for feature in FEATURES:
        assert sample(figures, "marketfeed_server_feature", f'{{feature="{feature}"}}') == 1
    assert sample(figures, "marketfeed_server_degraded") == 0
    assert sample(figures, "marketfeed_server_direct_writes_total") > 0
    assert "marketfeed_server_missing{" not in figures
    assert "server adapter:" not in feed.log()


async def test_a_stalled_reader_is_conflated_not_buffered(feed):
    reader = Reader(SYMBOLS)
    reading = asyncio.create_task(reader.run(feed.server.ws_url + f"?token={feed.token}"))
    slow: RawClient | None = None
    try:
        before = await asyncio.to_thread(scrape, feed.server.url, feed.token)
        slow, had = await stalled(feed)
        mark = reader.count
        await asyncio.wait_for(reader.wait_for(mark + STALL_QUOTES), timeout(60))
        during = reader.count - mark
        targets = dict(reader.latest)
        after = await asyncio.to_thread(scrape, feed.server.url, feed.token)
        received = 0
        gaps: list[tuple[str, int, int, int | None]] = []  # symbol, had, got, its prev_seq
        behind = set(SYMBOLS)
        async with asyncio.timeout(timeout(30)):
            async for msg in slow.messages():
                if msg["type"] != "quote":
                    continue
                received += 1
                symbol, seq = msg["symbol"], msg["seq"]
                assert seq > had[symbol], ("stale or reordered", msg, had)
                if seq != had[symbol] + 1:
                    gaps.append((symbol, had[symbol], seq, msg.get("prev_seq")))
                had[symbol] = seq
                if seq >= targets[symbol]:
                    behind.discard(symbol)
                    if not behind:
                        break
    finally:
        await stop(reading)
        if slow is not None:
            slow.abort()
    assert not behind, f"closed ({slow.close_code}) while behind on {behind}"
    conflated = "marketfeed_quotes_conflated_total"
    assert sample(after, conflated) > (sample(before, conflated) or 0)
    # The reader sees where quotes were skipped, each gap marked with the seq it had.
    assert gaps, f"no gap in {received} quotes"
    assert all(prev == had for _, had, _, prev in gaps), gaps
    # What it was sent is what the buffers held plus the newest per symbol, not the stall.
    assert received < 0.5 * during, (received, during)


async def test_sigterm_closes_websockets_with_1001_a_stalled_one_included(own_feed):
    feed = own_feed
    ws = await websockets.connect(feed.server.ws_url + f"?token={feed.token}")
    await ws.send(json.dumps({"op": "subscribe", "symbols": SYMBOLS, "id": 1}))
    slow, _ = await stalled(feed)
    try:
        for _ in range(500):  # the stalled client's buffers fill meanwhile
            await first_quote(ws)
        feed.server.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout(15)):
                async for _ in ws:
                    pass
        except websockets.ConnectionClosed:
            pass
        try:
            async with asyncio.timeout(timeout(15)):
                async for _ in slow.messages():  # what was buffered, then the close frame
                    pass
        except (asyncio.IncompleteReadError, ConnectionError):  # dropped without a close frame
            pass
        exit_code = await asyncio.to_thread(feed.server.proc.wait, timeout(15))
    finally:
        slow.abort()
        await ws.close()
    assert ws.close_code == 1001
    assert slow.close_code == 1001
    assert exit_code == 0, feed.log()
