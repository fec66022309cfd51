"""SIGTERM: clients are asked to reconnect, then every WebSocket is closed with 1001, the server
exits cleanly; runticker lets go of its lease."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable

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


async def until_message(ws: websockets.ClientConnection, match: Callable[[dict], bool]) -> None:
    """Read ``ws`` up to the first frame with a message ``match`` accepts."""
    while True:
        frame = await asyncio.wait_for(ws.recv(), timeout(10))
        if any(match(m) for m in decode_frame(frame)):
            return


async def close_code(ws: websockets.ClientConnection) -> int | None:
    """Read until the server closes; the code it closed with."""
    try:
        async for _ in ws:
            pass
    except websockets.ConnectionClosed:
        pass
    return ws.close_code


async def messages_until_close(ws: websockets.ClientConnection) -> list[dict]:
    """Every message the server sends until it closes."""
    seen: list[dict] = []
    try:
        async for frame in ws:
            seen += decode_frame(frame)
    except websockets.ConnectionClosed:
        pass
    return seen


async def collect(messages) -> list[dict]:  # type: ignore[no-untyped-def]
    return [m async for m in messages]


def exit_status(feed) -> int:  # type: ignore[no-untyped-def]
    return feed.server.proc.wait(timeout(15))


async def test_sigterm_without_grace_closes_every_websocket_with_1001_and_daphne_exits_0(
    feed_server,
):
    feed = feed_server(  # a stream in flight at the signal
        rates={s: 50.0 for s in SYMBOLS}, env_extra={"FEED_RECONNECT_GRACE_S": "0"}
    )
    url = feed.server.ws_url + f"?token={feed.token}"
    clients = await asyncio.gather(*(subscribed(url) for _ in range(5)))
    unauthenticated = await websockets.connect(feed.server.ws_url)  # still owes its auth message
    raw = RawClient(feed.port, feed.token)  # one that reads nothing until after the signal
    await raw.connect()
    feed.server.proc.send_signal(signal.SIGTERM)
    # The raw client reads from the signal on, beside the others: a close frame left
    # unread until daphne gives up on the close handshake is lost to its reset.
    seen_task = asyncio.create_task(collect(raw.messages()))
    codes = await asyncio.wait_for(
        asyncio.gather(*(close_code(ws) for ws in [*clients, unauthenticated])), timeout(15)
    )
    seen = await asyncio.wait_for(seen_task, timeout(15))
    exit_code = await asyncio.to_thread(feed.server.proc.wait, timeout(15))
    print(f"close codes {codes} + raw {raw.close_code}; daphne exit status {exit_code}")
    assert codes == [1001] * len(codes)
    assert raw.close_code == 1001
    assert "reconnect" not in {m["type"] for m in seen}  # a grace of 0: no announcement
    assert exit_code == 0, feed.log()  # a segfault would be -11
    assert "Traceback" not in feed.log(), feed.log()


async def test_sigterm_asks_every_client_to_reconnect_serves_it_meanwhile_then_closes_1001(
    feed_server,
):
    feed = feed_server(rates={s: 50.0 for s in SYMBOLS}, env_extra={"FEED_RECONNECT_GRACE_S": "2"})
    url = feed.server.ws_url + f"?token={feed.token}"
    stays = await subscribed(url)
    raw = RawClient(feed.port, feed.token)  # a slow client: it reads nothing until after the signal
    await raw.connect()
    raw.send({"op": "subscribe", "symbols": SYMBOLS, "id": 1})
    await raw.until(lambda m: m["type"] == "quote")
    feed.server.proc.send_signal(signal.SIGTERM)
    await until_message(stays, lambda m: m["type"] == "reconnect")
    # The old connection still answers during the grace: the client can move at leisure.
    await stays.send(json.dumps({"op": "ping", "id": 7}))
    await until_message(stays, lambda m: m.get("id") == 7)
    rest = await asyncio.wait_for(messages_until_close(stays), timeout(15))
    raw_seen = [m async for m in raw.messages()]
    exit_code = await asyncio.to_thread(exit_status, feed)
    announcement = [m for m in raw_seen if m["type"] == "reconnect"]
    assert announcement == [{"type": "reconnect", "within_s": 2, "reason": "shutdown"}]
    assert stays.close_code == 1001
    assert raw.close_code == 1001
    assert "reconnect" not in {m["type"] for m in rest}  # announced once
    assert exit_code == 0, feed.log()
    assert "Traceback" not in feed.log(), feed.log()


async def test_sigterm_exits_as_soon_as_the_clients_have_moved(feed_server):
    feed = feed_server(env_extra={"FEED_RECONNECT_GRACE_S": "600"})  # far longer than the test
    ws = await subscribed(feed.server.ws_url + f"?token={feed.token}")
    feed.server.proc.send_signal(signal.SIGTERM)
    await until_message(ws, lambda m: m["type"] == "reconnect")
    await ws.close()
    assert await asyncio.to_thread(exit_status, feed) == 0, feed.log()


async def test_a_second_sigterm_cuts_the_grace_short(feed_server):
    feed = feed_server(env_extra={"FEED_RECONNECT_GRACE_S": "600"})
    ws = await subscribed(feed.server.ws_url + f"?token={feed.token}")
    feed.server.proc.send_signal(signal.SIGTERM)
    await until_message(ws, lambda m: m["type"] == "reconnect")
    feed.server.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(close_code(ws), timeout(15)) == 1001
    assert await asyncio.to_thread(exit_status, feed) == 0, feed.log()
    assert "Traceback" not in feed.log(), feed.log()


@pytest.mark.redis
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
        assert holder
        assert f":{ticker.proc.pid}:" in holder
        ticker.proc.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(ticker.proc.wait, timeout(15))
        assert exit_code == 0, "".join(ticker.log)
        assert await client.get("mf:leader") is None
        assert await client.pttl("mf:leader") == -2  # gone, not merely expiring
    finally:
        ticker.stop()
        await client.aclose()


async def test_sigterm_writes_the_embedded_tickers_last_bars_before_daphne_exits(feed_server):
    # A flush interval far beyond the test, and no backfilled history: only the final
    # flush at shutdown can write a bar.
    feed = feed_server(
        rates={s: 50.0 for s in SYMBOLS},
        env_extra={
            "FEED_RECONNECT_GRACE_S": "0", "FEED_BARS_FLUSH_S": "3600", "FEED_BACKFILL_DAYS": "0",
        },
    )
    ws = await subscribed(feed.server.ws_url + f"?token={feed.token}")
    count = "from feeds.models import Bar; print(Bar.objects.count())"
    assert manage(feed.env, "shell", "-c", count).split()[-1] == "0"
    feed.server.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(close_code(ws), timeout(15)) == 1001
    assert await asyncio.to_thread(exit_status, feed) == 0, feed.log()
    assert int(manage(feed.env, "shell", "-c", count).split()[-1]) > 0, feed.log()
    assert "Traceback" not in feed.log(), feed.log()
