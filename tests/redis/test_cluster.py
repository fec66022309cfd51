"""Scale-out, live: one runticker and two daphne processes on a real Redis."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest
import websockets

from tests.schema import decode_frame
from tests.servers import Server, free_port, manage
from tests.timeouts import timeout

pytestmark = [pytest.mark.redis, pytest.mark.live]


@pytest.fixture
def cluster(redis_url, tmp_path):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FEED_TICKER")}
    env.update(REDIS_URL=redis_url, MARKETFEED_VAR_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    manage(env, "migrate", "--noinput")
    token = manage(env, "feeduser", "clusteruser").strip().splitlines()[-1]
    ticker = Server(env, 0, ready="ticker started", command=[sys.executable, "manage.py", "runticker"])
    servers = [Server(env, free_port(), ready="Listening on TCP address") for _ in range(2)]
    procs = [ticker, *servers]
    try:
        for proc in procs:
            proc.start()
        yield env, token, servers
    finally:
        for proc in procs:
            proc.stop()


async def collect(url: str, token: str, symbol: str, quotes: dict, statuses: list, subscribed: asyncio.Event):
    async with websockets.connect(f"{url}?token={token}") as ws:
        await ws.send(json.dumps({"op": "subscribe", "symbols": [symbol], "id": 1}))
        while True:
            for msg in decode_frame(await asyncio.wait_for(ws.recv(), timeout(10))):
                if msg["type"] == "subscribed":
                    subscribed.set()
                elif msg["type"] == "quote":
                    quotes[msg["seq"]] = (msg["bid"], msg["ask"], msg["ts"])
                elif msg["type"] == "status":
                    statuses.append(msg["state"])
                    if msg["state"] == "halted":
                        return


async def test_clients_on_two_servers_see_the_same_quotes_and_the_same_halt(cluster):
    env, token, servers = cluster
    quotes = [{}, {}]
    statuses = [[], []]
    ready = [asyncio.Event(), asyncio.Event()]
    tasks = [
        asyncio.create_task(collect(s.ws_url, token, "MSFT", quotes[i], statuses[i], ready[i]))
        for i, s in enumerate(servers)
    ]
    for event in ready:
        await asyncio.wait_for(event.wait(), timeout(10))

    async def common(n: int) -> set[int]:
        while len(set(quotes[0]) & set(quotes[1])) < n:
            done = [t for t in tasks if t.done()]
            if done:
                done[0].result()
            await asyncio.sleep(0.05)
        return set(quotes[0]) & set(quotes[1])

    shared = await asyncio.wait_for(common(5), timeout(20))
    assert all(quotes[0][seq] == quotes[1][seq] for seq in shared)
    halt = (
        "from feeds.models import Instrument as I; from feeds.services import instrument_halt as h; "
        "h(instruments=I.objects.filter(symbol='MSFT'))"
    )
    await asyncio.to_thread(manage, env, "shell", "-c", halt)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout(10))
    assert statuses == [["halted"], ["halted"]]
