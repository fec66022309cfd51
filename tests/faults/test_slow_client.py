"""A client that stops reading: bounded server memory, others undisturbed, newest quotes after.

Ten symbols tick at 100 quotes/s each (1,000 quotes/s together). Stalled
clients (raw sockets with a small receive buffer that stop reading) subscribe
to all ten, as does one client that keeps reading. While the stalled ones read
nothing for 10,000 quotes (about 10 s), the server's RSS must stay within the
bound (PROTOCOL.md, "Slow consumers": per connection, the transport buffer up
to FEED_WRITE_BUFFER_BYTES plus one held quote per symbol), and the reading
client must see every quote, on time. When a stalled client reads again, it
gets each symbol's newest quote: seq only ever goes up, with gaps.

The socket send buffer is capped (FEED_SOCKET_BUFFER_BYTES) so that the stall
reaches the server within the test; with Linux's autotuning the kernel would
first absorb up to 4 MiB per socket, which is kernel memory, outside the bound.
"""

from __future__ import annotations

import asyncio
import json
import time
from itertools import pairwise

import pytest
import websockets

from tests.faults.rawws import RawClient
from tests.schema import decode_frame
from tests.timeouts import stop, timeout

pytestmark = pytest.mark.live

SYMBOLS = ["AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "TSLA", "JPM", "EUR/USD", "BTC-USD"]
RATE_PER_SYMBOL = 100.0  # quotes/s: 1,000 quotes/s over the ten
STALLED = 10
STALL_QUOTES = 10_000  # about 10 s of the ten symbols
# Unbounded, 10 stalled clients would hold about 10 x 2.3 MB of quotes by then.
RSS_GROWTH_BOUND = 8 * 2**20
LATENCY_P99_BOUND_S = 0.25


class Reader:
    """The client that keeps up: every quote with its arrival time and lag."""

    def __init__(self) -> None:
        self.quotes: list[tuple[str, int, float]] = []  # (symbol, seq, lag in s)
        self.latest: dict[str, int] = {}
        self.arrived = asyncio.Event()

    async def run(self, url: str) -> None:
        async with websockets.connect(url, max_queue=None) as ws:
            await ws.send(json.dumps({"op": "subscribe", "symbols": SYMBOLS, "id": 1}))
            async for frame in ws:
                now_us = time.time_ns() // 1000
                for msg in decode_frame(frame):
                    if msg["type"] == "quote":
                        self.quotes.append((msg["symbol"], msg["seq"], (now_us - msg["ts"]) / 1e6))
                        self.latest[msg["symbol"]] = msg["seq"]
                        self.arrived.set()

    async def count(self, n: int) -> None:
        while len(self.quotes) < n:
            self.arrived.clear()
            await self.arrived.wait()


async def stall(feed) -> RawClient:
    client = RawClient(feed.port, feed.token, rcvbuf=4096)
    await client.connect()
    client.send({"op": "subscribe", "symbols": SYMBOLS, "id": 1})
    await asyncio.wait_for(client.until(lambda m: m.get("id") == 1), timeout(10))
    return client  # and from now on nobody reads it


async def catch_up(client: RawClient, targets: dict[str, int]) -> dict[str, list[int]]:
    """Read until every symbol has reached its target seq; the seqs seen, per symbol."""
    seen: dict[str, list[int]] = {s: [] for s in SYMBOLS}
    behind = set(SYMBOLS)
    async for msg in client.messages():
        if msg["type"] == "quote":
            seen[msg["symbol"]].append(msg["seq"])
            if msg["seq"] >= targets[msg["symbol"]]:
                behind.discard(msg["symbol"])
                if not behind:
                    return seen
    raise AssertionError(f"closed ({client.close_code}) while behind on {behind}")


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(len(ordered) * 0.99)]


async def test_a_stalled_reader_is_conflated_in_bounded_memory_and_others_keep_up(feed_server):
    feed = feed_server(
        rates={s: RATE_PER_SYMBOL for s in SYMBOLS}, env_extra={"FEED_SOCKET_BUFFER_BYTES": "16384"}
    )
    reader = Reader()
    reading = asyncio.create_task(reader.run(feed.server.ws_url + f"?token={feed.token}"))
    try:
        stalled = await asyncio.gather(*(stall(feed) for _ in range(STALLED)))
        await asyncio.wait_for(reader.count(1000), timeout(10))
        rss_before, mark = feed.rss(), len(reader.quotes)
        await asyncio.wait_for(reader.count(mark + STALL_QUOTES), timeout(30))
        rss_after = feed.rss()
        stats = await asyncio.to_thread(feed.stats)
        during = reader.quotes[mark:]
        targets = dict(reader.latest)

        resumed = time.monotonic()
        caught = await asyncio.wait_for(
            asyncio.gather(*(catch_up(c, targets) for c in stalled)), timeout(10)
        )
        catch_up_s = time.monotonic() - resumed
    finally:
        await stop(reading)
    for client in stalled:
        client.abort()

    growth = rss_after - rss_before
    lag = p99([q[2] for q in during])
    received = [sum(len(v) for v in seen.values()) for seen in caught]
    print(
        f"{STALLED} stalled clients, {len(during)} quotes during the stall: server RSS "
        f"{rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB ({growth / 2**10:+.0f} KiB), "
        f"longest outbox {stats['outbox_pending_max']}; reader p99 lag {lag * 1000:.1f} ms; "
        f"stalled clients got {min(received)}-{max(received)} quotes, "
        f"caught up in {catch_up_s:.2f} s"
    )
    assert growth < RSS_GROWTH_BOUND
    # Held: at most one quote per symbol and the odd control message.
    assert stats["outbox_pending_max"] <= len(SYMBOLS) + 5, stats
    # The reader never waited behind the stalled clients: every quote, on time.
    by_symbol: dict[str, list[int]] = {}
    for symbol, seq, _ in reader.quotes:
        by_symbol.setdefault(symbol, []).append(seq)
    for symbol, seqs in by_symbol.items():
        unbroken = list(range(seqs[0], seqs[0] + len(seqs)))
        assert seqs == unbroken, f"{symbol}: the reader lost quotes"
    assert lag < timeout(LATENCY_P99_BOUND_S)
    for seen in caught:
        for symbol, seqs in seen.items():
            assert all(a < b for a, b in pairwise(seqs)), f"{symbol} stale or reordered: {seqs}"
            assert any(b - a > 1 for a, b in pairwise(seqs)), f"{symbol}: no conflation gap"
    # What a stalled client is sent is what its buffers held plus the newest per symbol,
    # not the whole stall replayed.
    assert max(received) < 0.5 * len(during), received
