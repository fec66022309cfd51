"""Scale-out, live: one runticker and two daphne processes on a real Redis."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.redis.cluster import cluster_env, running_cluster
from tests.schema import decode_frame
from tests.servers import manage
from tests.timeouts import timeout

pytestmark = [pytest.mark.redis, pytest.mark.live]


@pytest.fixture
def cluster(redis_url, tmp_path):
    env = cluster_env(redis_url, tmp_path)
    with running_cluster(env) as (token, _ticker, servers):
        yield env, token, servers


async def collect(
    url,
    token,
    symbol,
    quotes: dict,
    statuses: list,
    subscribed: asyncio.Event,
    arrived: asyncio.Event,
):
    async with websockets.connect(f"{url}?token={token}") as ws:
        await ws.send(json.dumps({"op": "subscribe", "symbols": [symbol], "id": 1}))
        while True:
            for msg in decode_frame(await asyncio.wait_for(ws.recv(), timeout(10))):
                if msg["type"] == "subscribed":
                    subscribed.set()
                elif msg["type"] == "quote":
                    quotes[msg["seq"]] = (msg["bid"], msg["ask"], msg["ts"])
                    arrived.set()
                elif msg["type"] == "status":
                    statuses.append(msg["state"])
                    if msg["state"] == "halted":
                        return


async def test_clients_on_two_servers_see_the_same_quotes_and_the_same_halt(cluster):
    env, token, servers = cluster
    quotes = [{}, {}]
    statuses = [[], []]
    ready = [asyncio.Event(), asyncio.Event()]
    arrived = asyncio.Event()  # set by the collectors on every quote
    tasks = [
        asyncio.create_task(
            collect(s.ws_url, token, "MSFT", quotes[i], statuses[i], ready[i], arrived)
        )
        for i, s in enumerate(servers)
    ]
    for event in ready:
        await asyncio.wait_for(event.wait(), timeout(10))

    async def common(n: int) -> set[int]:
        while len(set(quotes[0]) & set(quotes[1])) < n:
            arrived.clear()
            waits = [asyncio.ensure_future(arrived.wait()), *tasks]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            waits[0].cancel()
            for task in tasks:
                if task.done():
                    task.result()  # a collector that ended early explains why
        return set(quotes[0]) & set(quotes[1])

    shared = await asyncio.wait_for(common(5), timeout(20))
    assert all(quotes[0][seq] == quotes[1][seq] for seq in shared)
    halt = (
        "from feeds.models import Instrument as I; "
        "from feeds.services import instrument_halt as h; "
        "h(instruments=I.objects.filter(symbol='MSFT'))"
    )
    await asyncio.to_thread(manage, env, "shell", "-c", halt)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout(10))
    assert statuses == [["halted"], ["halted"]]
