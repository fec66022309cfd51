"""Redis away for 10 s under a running cluster: nothing exits, one line per outage, quotes resume.

runticker and a daphne on a Redis of the test's own; a client stays subscribed
(reconnecting, as a client should, if its server drops it). Redis is stopped,
kept away for ten seconds, and started again on the same port (empty, as a
cache-only Redis comes back).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from itertools import pairwise

import pytest
import websockets

from tests.redis.cluster import cluster_env, running_cluster
from tests.schema import decode_frame
from tests.timeouts import stop, timeout

pytestmark = [pytest.mark.redis, pytest.mark.live]

OUTAGE_S = 10.0
WARNING = re.compile(r" (WARNING|ERROR|CRITICAL) ")


class Subscriber:
    def __init__(self, url: str) -> None:
        self.url = url
        self.arrivals: list[tuple[float, int]] = []  # (monotonic time, seq)
        self.numbered: list[tuple[str, int]] = []  # (epoch, seq)
        self.epoch = ""
        self.arrived = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with websockets.connect(self.url) as ws:
                    await ws.send(json.dumps({"op": "subscribe", "symbols": ["AAPL"], "id": 1}))
                    async for frame in ws:
                        for msg in decode_frame(frame):
                            if msg["type"] in ("welcome", "snapshot"):
                                self.epoch = msg["epoch"]
                            elif msg["type"] == "quote":
                                self.arrivals.append((time.monotonic(), msg["seq"]))
                                self.numbered.append((self.epoch, msg["seq"]))
                                self.arrived.set()
            except (OSError, websockets.ConnectionClosed, websockets.InvalidStatus):
                pass
            await asyncio.sleep(0.2)  # the client's reconnect back-off

    async def quote_after(self, moment: float) -> float:
        while not any(t > moment for t, _ in self.arrivals):
            self.arrived.clear()
            await self.arrived.wait()
        return min(t for t, _ in self.arrivals if t > moment)


def lines_since(proc, mark: int) -> list[str]:
    return proc.log[mark:]


async def test_redis_away_for_ten_seconds_is_one_warning_per_process_and_quotes_resume(
    private_redis, tmp_path
):
    env = cluster_env(private_redis.url, tmp_path, FEED_LEASE_S="1.0")
    with running_cluster(env, servers=1) as (token, ticker, [server]):
        client = Subscriber(server.ws_url + f"?token={token}")
        task = asyncio.create_task(client.run())
        try:
            await asyncio.wait_for(client.quote_after(0), timeout(15))
            marks = {"ticker": len(ticker.log), "daphne": len(server.log)}
            await asyncio.to_thread(private_redis.stop)
            stopped = time.monotonic()
            await asyncio.sleep(OUTAGE_S)  # the outage itself, not a wait for anything
            await asyncio.to_thread(private_redis.start)
            back = time.monotonic()
            first = await asyncio.wait_for(client.quote_after(back), timeout(30))
        finally:
            await stop(task)
        recovery = first - back
        last_before = max(t for t, _ in client.arrivals if t <= back)
        print(f"Redis away {back - stopped:.1f} s; quotes resumed {recovery:.2f} s after it was "
              f"back (last quote before: {last_before - stopped:+.2f} s from the stop)")
        for proc in (ticker, server):
            assert proc.proc.poll() is None, "".join(proc.log)
        for name, proc in (("ticker", ticker), ("daphne", server)):
            during = lines_since(proc, marks[name])
            warnings = [line for line in during if WARNING.search(line)]
            print(f"{name}: {''.join(warnings)}".rstrip())
            told = f"{name} logged {len(warnings)} warnings:\n" + "".join(during)
            assert len(warnings) == 1, told
            assert "unreachable" in warnings[0]
            assert not any("Traceback" in line for line in during), "".join(during)
        assert recovery < timeout(10)
        # Within one numbering (epoch) seq only goes up; a new one came with its snapshot.
        for epoch in {e for e, _ in client.numbered}:
            seqs = [s for e, s in client.numbered if e == epoch]
            assert all(a < b for a, b in pairwise(seqs)), (epoch, seqs)
        print("epochs seen:", sorted({e for e, _ in client.numbered}))
