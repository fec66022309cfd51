"""Failover, live: two runticker processes on a real Redis; the leader is killed with SIGKILL.

What the channel layer carries is watched directly (a layer member of the
test's own), so a repeated or backward ``seq`` would show even where a server
would filter it out before clients see it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from itertools import pairwise

import pytest

from feeds.core.groups import group_for_symbol
from tests.servers import NO_HISTORY, Server, manage
from tests.timeouts import stop, timeout

pytestmark = [pytest.mark.redis, pytest.mark.live]

LEASE_S = 1.0
SYMBOLS = ["AAPL", "EUR/USD", "BTC-USD"]


class Watcher:
    """Every quote message on the layer for SYMBOLS, with its arrival time."""

    def __init__(self, redis_url: str) -> None:
        from channels_redis.pubsub import RedisPubSubChannelLayer

        self.layer = RedisPubSubChannelLayer(hosts=[{"address": redis_url, "socket_timeout": None}])
        self.quotes: list[tuple[float, str, int]] = []
        self.arrived = asyncio.Event()

    async def run(self) -> None:
        channel = await self.layer.new_channel("watch.")
        for symbol in SYMBOLS:
            await self.layer.group_add(group_for_symbol(symbol), channel)
        while True:
            message = await self.layer.receive(channel)
            if message["type"] == "quote":
                self.quotes.append((time.monotonic(), message["symbol"], message["seq"]))
                self.arrived.set()

    async def more(self, n: int, after: float = 0.0) -> None:
        while sum(1 for t, _, _ in self.quotes if t > after) < n:
            self.arrived.clear()
            await self.arrived.wait()


@pytest.fixture
def tickers(redis_url, tmp_path):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FEED_TICKER")}
    env.update(
        REDIS_URL=redis_url, MARKETFEED_VAR_DIR=str(tmp_path), PYTHONUNBUFFERED="1",
        FEED_LEASE_S=str(LEASE_S), **NO_HISTORY,
    )
    manage(env, "migrate", "--noinput")
    command = [sys.executable, "manage.py", "runticker"]
    first = Server(env, 0, ready="leader:", command=command)
    second = Server(env, 0, ready="standby:", command=command)
    try:
        first.start()
        second.start()
        yield first, second
    finally:
        first.stop()
        second.stop()


async def test_standby_takes_over_a_killed_leader_without_repeating_or_rewinding_seq(
    tickers, redis_url
):
    leader, standby = tickers
    watcher = Watcher(redis_url)
    watching = asyncio.create_task(watcher.run())
    try:
        await asyncio.wait_for(watcher.more(30), timeout(10))
        killed_at = time.monotonic()
        os.kill(leader.proc.pid, signal.SIGKILL)
        await asyncio.wait_for(watcher.more(30, after=killed_at + 0.05), timeout(10 + LEASE_S))
    finally:
        await stop(watching)
        await watcher.layer.flush()
    assert leader.proc.wait(timeout(5)) == -signal.SIGKILL
    assert any("leader:" in line for line in standby.log), "".join(standby.log)

    by_symbol: dict[str, list[int]] = {}
    for _, symbol, seq in watcher.quotes:
        by_symbol.setdefault(symbol, []).append(seq)
    for symbol, seqs in by_symbol.items():
        assert all(a < b for a, b in pairwise(seqs)), f"{symbol}: seq repeated or went back: {seqs}"
    resumed = min(t for t, _, _ in watcher.quotes if t > killed_at + 0.05)
    gap = resumed - killed_at
    print(f"quotes resumed {gap:.2f} s after the SIGKILL (lease {LEASE_S} s)")
    assert gap < timeout(LEASE_S * 3)
