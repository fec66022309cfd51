"""SIGTERM: every WebSocket is closed with 1001, the server exits cleanly, runticker lets go of its lease."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import pytest
import websockets

from tests.faults.rawws import RawClient
from tests.redis.cluster import cluster_env
from tests.schema import decode_frame
from tests.servers import Server, manage
from tests.timeouts import timeout

pytestmark = pytest.mark.live

SYMBOLS = ["AAPL", "MSFT", "EUR/USD", "BTC-USD"]


async def subscribed(url: str) -> websockets.ClientConnection:
    ws = await websockets.connect(url)
    await ws.send(json.dumps({"op": "subscribe", "symbols": SYMBOLS, "id": 1}))
    while not any(m["type"] == "quote" for m in decode_frame(await ws.recv())):
        pass
    return ws


async def close_code(ws: websockets.ClientConnection) -> int | None:
    """Read until the server closes; the code it closed with."""
    try:
        async for _ in ws:
            pass
    except websockets.ConnectionClosed:
        pass
    return ws.close_code


async def test_sigterm_closes_every_websocket_with_1001_and_daphne_exits_0(feed_server):
    feed = feed_server(rates={s: 50.0 for s in SYMBOLS})  # a stream in flight at the signal
    url = feed.server.ws_url + f"?token={feed.token}"
    clients = await asyncio.gather(*(subscribed(url) for _ in range(5)))
    unauthenticated = await websockets.connect(feed.server.ws_url)  # still owes its auth message
    raw = RawClient(feed.port, feed.token)  # one that reads nothing until after the signal
    await raw.connect()
    feed.server.proc.send_signal(signal.SIGTERM)
    codes = await asyncio.wait_for(
        asyncio.gather(*(close_code(ws) for ws in [*clients, unauthenticated])), timeout(15)
    )
    async for _ in raw.messages():
        pass
    exit_code = await asyncio.to_thread(feed.server.proc.wait, timeout(15))
    print(f"close codes {codes} + raw {raw.close_code}; daphne exit status {exit_code}")
    assert codes == [1001] * len(codes)
    assert raw.close_code == 1001
    assert exit_code == 0, feed.log()  # a segfault would be -11
    assert "Traceback" not in feed.log(), feed.log()


async def test_sigterm_makes_runticker_release_its_lease_at_once(redis_url, tmp_path):
    import redis.asyncio as redis

    # A lease far longer than the test: only a release can free it.
    env = cluster_env(redis_url, tmp_path, FEED_LEASE_S="60")
    manage(env, "migrate", "--noinput")
    ticker = Server(env, 0, ready="leader:", command=[sys.executable, "manage.py", "runticker"])
    ticker.start()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        holder = await client.get("mf:leader")
        assert holder and f":{ticker.proc.pid}:" in holder
        ticker.proc.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(ticker.proc.wait, timeout(15))
        assert exit_code == 0, "".join(ticker.log)
        assert await client.get("mf:leader") is None
        assert await client.pttl("mf:leader") == -2  # gone, not merely expiring
    finally:
        ticker.stop()
        await client.aclose()
