"""Redis restarts under a running cluster: everything reconnects by itself, nothing exits.

The Redis is this test's own (it is restarted, and it keeps nothing on disk, so
it comes back empty, as a cache-only Redis in production would).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from itertools import pairwise

import pytest
import websockets

from tests.redis.cluster import cluster_env, running_cluster
from tests.schema import decode_frame
from tests.timeouts import stop, timeout

pytestmark = [pytest.mark.redis, pytest.mark.live]


class Subscriber:
    """A client that stays subscribed, reconnecting if its server drops it."""

    def __init__(self, url: str, token: str, symbol: str) -> None:
        self.url, self.token, self.symbol = f"{url}?token={token}", token, symbol
        self.quotes: list[tuple[str, int]] = []  # (epoch, seq)
        self.epoch = ""
        self.reconnects = 0
        self.arrived = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with websockets.connect(self.url) as ws:
                    subscribe = {"op": "subscribe", "symbols": [self.symbol], "id": 1}
                    await ws.send(json.dumps(subscribe))
                    async for frame in ws:
                        for msg in decode_frame(frame):
                            if msg["type"] in ("welcome", "snapshot"):
                                self.epoch = msg["epoch"]
                            elif msg["type"] == "quote":
                                self.quotes.append((self.epoch, msg["seq"]))
                                self.arrived.set()
            except (OSError, websockets.ConnectionClosed):
                pass
            self.reconnects += 1
            await asyncio.sleep(0.2)  # a client's reconnect backoff, not a wait for the test

    async def more(self, n: int) -> None:
        target = len(self.quotes) + n
        while len(self.quotes) < target:
            self.arrived.clear()
            await self.arrived.wait()


def healthz(url: str) -> int:
    with urllib.request.urlopen(url + "/healthz", timeout=timeout(10)) as response:
        return response.status


async def test_quotes_flow_again_after_redis_restarts_and_no_process_exits(private_redis, tmp_path):
    env = cluster_env(private_redis.url, tmp_path, FEED_LEASE_S="1.0")
    with running_cluster(env) as (token, ticker, servers):
        clients = [Subscriber(s.ws_url, token, "AAPL") for s in servers]
        tasks = [asyncio.create_task(c.run()) for c in clients]
        try:
            await asyncio.wait_for(asyncio.gather(*(c.more(5) for c in clients)), timeout(15))
            before = [list(c.quotes) for c in clients]
            await asyncio.to_thread(private_redis.restart)
            await asyncio.wait_for(asyncio.gather(*(c.more(10) for c in clients)), timeout(30))
        finally:
            await stop(*tasks)
        for proc in (ticker, *servers):
            assert proc.proc.poll() is None, "".join(proc.log)
        for server in servers:
            assert await asyncio.to_thread(healthz, server.url) == 200
        for client, old in zip(clients, before, strict=True):
            epochs = {e for e, _ in client.quotes}
            print(f"reconnects {client.reconnects}, epochs {epochs}, last before {old[-1]}, "
                  f"after {client.quotes[-1]}")
            # The ticker ran on through the restart: same numbering, a gap at most.
            assert epochs == {old[-1][0]}
            seqs = [s for _, s in client.quotes]
            assert all(a < b for a, b in pairwise(seqs))
