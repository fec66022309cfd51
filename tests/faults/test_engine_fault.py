"""Embedded default: the engine failing for one instrument never stops the others.

An instrument row with an infinite volatility passes the database's checks
(it is > 0) but makes the price process produce NaN, so stepping it raises.
The server's own ticker must log that instrument's failures and keep every
other instrument quoting.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.schema import decode_frame
from tests.timeouts import timeout

pytestmark = pytest.mark.live

BAD, GOOD = "MSFT", "AAPL"
BREAK = (
    "from feeds.models import Instrument as I\n"
    f"I.objects.filter(symbol={BAD!r}).update(volatility=float('inf'), quote_rate=50)\n"
    f"I.objects.filter(symbol={GOOD!r}).update(quote_rate=50)\n"
)


def failures(feed) -> int:
    return sum(1 for line in feed.server.log if f"{BAD} failed to step" in line)


async def test_an_instrument_whose_engine_raises_does_not_stop_the_others(feed_server):
    feed = feed_server(prepare=BREAK)
    good_after_failure = 0
    async with websockets.connect(feed.server.ws_url + f"?token={feed.token}") as ws:
        await ws.send(json.dumps({"op": "subscribe", "symbols": [BAD, GOOD], "id": 1}))

        async def watch() -> None:
            nonlocal good_after_failure
            while True:
                for msg in decode_frame(await ws.recv()):
                    if msg["type"] == "quote" and msg["symbol"] == GOOD and failures(feed) >= 2:
                        good_after_failure += 1
                        if good_after_failure >= 50:
                            return

        await asyncio.wait_for(watch(), timeout(30))
    assert feed.server.proc.poll() is None
    assert failures(feed) >= 2  # it keeps trying the broken one, backing off
    assert "unreachable" not in feed.log()  # the publishing loop itself never failed
