"""prev_seq for a genuinely slow client: a raw socket with a small receive buffer, not reading.

The outbox conflates at resume time, after the quotes were delivered to the
connection; what the client reads must still mark each gap with the seq it
really had, and every quote that follows on must be the shared, unmarked text.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.rawws import RawClient
from tests.live.reader import Reader
from tests.timeouts import stop, timeout

pytestmark = pytest.mark.live

SYMBOLS = ["AAPL", "MSFT"]
RATE_PER_SYMBOL = 250.0  # quotes/s
STALL_QUOTES = 3000  # far more than the socket and write buffers hold


async def test_a_stalled_reader_sees_each_gap_marked_with_the_seq_it_had(feed_server):
    feed = feed_server(
        rates={s: RATE_PER_SYMBOL for s in SYMBOLS}, env_extra={"FEED_SOCKET_BUFFER_BYTES": "16384"}
    )
    reader = Reader(SYMBOLS, gapless=True)
    reading = asyncio.create_task(reader.run(feed.server.ws_url + f"?token={feed.token}"))
    slow = RawClient(feed.port, feed.token, rcvbuf=4096)
    try:
        await slow.connect()
        slow.send({"op": "subscribe", "symbols": SYMBOLS, "id": 1})
        had: dict[str, int] = {}
        async for msg in slow.messages():
            if msg["type"] == "snapshot":
                had[msg["symbol"]] = msg["seq"]
                if len(had) == len(SYMBOLS):
                    break
        # Meanwhile the slow one reads nothing.
        await asyncio.wait_for(reader.wait_for(STALL_QUOTES), timeout(30))
        targets = dict(reader.latest)
        marked = plain = 0
        behind = set(SYMBOLS)
        async with asyncio.timeout(timeout(20)):
            async for msg in slow.messages():
                if msg["type"] != "quote":
                    continue
                symbol, seq = msg["symbol"], msg["seq"]
                if "prev_seq" in msg:
                    assert msg["prev_seq"] == had[symbol], (msg, had)
                    assert seq > had[symbol] + 1, (msg, had)
                    marked += 1
                else:
                    assert seq == had[symbol] + 1, (msg, had)
                    plain += 1
                had[symbol] = seq
                if seq >= targets[symbol]:
                    behind.discard(symbol)
                    if not behind:
                        break
    finally:
        await stop(reading)
        slow.abort()
    assert marked > 0, (marked, plain)
    assert plain > 0, (marked, plain)
