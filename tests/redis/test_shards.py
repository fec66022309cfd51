"""The channel layer over two Redis servers (REDIS_LAYER_URLS), with either layer.

Live: two private Redis servers, one runticker and two daphne processes whose
layer spans both; the quote store and the ticker lease stay on the first
(REDIS_URL). Every kind of message the feed sends over the layer has to arrive
wherever channels-redis put its group: quotes and halts on per-instrument
groups spread over both servers, the ticker's control group (the ticker's own
poll is an hour away, so only the message can make a halt happen), and a
revocation on the servers' control group (the re-check is an hour away too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
import redis
import websockets
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from feeds.core.groups import SERVERS_CONTROL_GROUP, TICKER_CONTROL_GROUP, group_for_symbol
from feeds.edges.health import probe_groups
from marketfeed.localredis import LocalRedis, LocalRedisError
from tests.redis.cluster import cluster_env, running_cluster
from tests.schema import decode_frame
from tests.servers import ROOT, manage
from tests.timeouts import stop, timeout

# Spread over both servers by either layer's hashing (checked below on the servers themselves).
SYMBOLS = ["AAPL", "MSFT", "NVDA", "META", "EUR/USD", "BTC-USD", "GOOGL", "TSLA"]
HALTED = ["AAPL", "NVDA"]  # one on each Redis, with either layer
# A revocation reaches every connection in about a second (PROTOCOL.md, SECURITY.md).
REVOKED_WITHIN_S = 2.0

@pytest.fixture
def two_redis():
    with contextlib.ExitStack() as stack:
        servers = []
        for _ in range(2):
            try:
                servers.append(stack.enter_context(LocalRedis(start_timeout=timeout(30))))
            except LocalRedisError as exc:
                pytest.fail(f"the sharding test needs two real Redis servers: {exc}")
        yield servers


@pytest.fixture(params=["pubsub", "core"])
def sharded(request, two_redis, tmp_path):
    first, second = two_redis
    env = cluster_env(
        first.url,
        tmp_path,
        REDIS_LAYER=request.param,
        REDIS_LAYER_URLS=f"{first.url},{second.url}",
        FEED_AUTH_RECHECK_S="3600",
        FEED_RELOAD_INTERVAL_S="3600",
    )
    with running_cluster(env) as (token, _ticker, servers):
        yield SimpleNamespace(
            env=env, token=token, servers=servers, redis=two_redis, layer=request.param
        )


class Watcher:
    """A client of one server subscribed to SYMBOLS: quotes by symbol and seq, halts, its close."""

    def __init__(self, url: str, token: str, arrived: asyncio.Event) -> None:
        self.url, self.token, self.arrived = url, token, arrived
        self.quotes: dict[str, dict[int, tuple[str, str]]] = {s: {} for s in SYMBOLS}
        self.halted: set[str] = set()
        self.errors: list[str] = []
        self.close_code: int | None = None
        self.closed_at = 0.0

    async def run(self) -> None:
        async with websockets.connect(f"{self.url}?token={self.token}") as ws:
            await ws.send(json.dumps({"op": "subscribe", "symbols": SYMBOLS, "id": 1}))
            try:
                async for frame in ws:
                    for msg in decode_frame(frame):
                        if msg["type"] == "quote":
                            self.quotes[msg["symbol"]][msg["seq"]] = (msg["bid"], msg["ask"])
                        elif msg["type"] == "status" and msg["state"] == "halted":
                            self.halted.add(msg["symbol"])
                        elif msg["type"] == "error":
                            self.errors.append(msg["code"])
                    self.arrived.set()
            except websockets.ConnectionClosed:
                pass
            self.closed_at = time.monotonic()
            self.close_code = ws.close_code
            self.arrived.set()


async def until(condition, arrived: asyncio.Event, tasks, seconds: float, what) -> None:
    """Wait for ``condition()``, re-checked on every message; ``what()`` says what did not come.

    A watcher that failed says why.
    """

    async def wait() -> None:
        while not condition():
            arrived.clear()
            await arrived.wait()
            for task in tasks:
                if task.done() and task.exception() is not None:
                    task.result()

    try:
        await asyncio.wait_for(wait(), timeout(seconds))
    except TimeoutError:
        pytest.fail(f"not within {timeout(seconds):g} s: {what()}", pytrace=False)


def groups_on(url: str, layer: str) -> dict[str, int]:
    """The layer's groups that live on the Redis at ``url``, with their number of members there.

    pubsub: a group is a Redis channel ``asgi__group__<name>`` with one subscriber per
    process in it; core: a sorted set ``asgi:group:<name>`` of member channels.
    """
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        if layer == "pubsub":
            names = client.pubsub_channels("asgi__group__*")
            counts = dict(client.pubsub_numsub(*names)) if names else {}
            return {name.removeprefix("asgi__group__"): n for name, n in counts.items()}
        return {
            key.removeprefix("asgi:group:"): client.zcard(key)
            for key in client.keys("asgi:group:*")
        }
    finally:
        client.close()


def healthz(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=timeout(10)) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("redis://127.0.0.1:6379/0,redis//b:6379/0", "entry 2 'redis//b:6379/0': expected redis://"),
        ("redis://b:99999/0", "entry 1 'redis://b:99999/0': the port is not a number"),
        ("redis://b/0,redis://b/0", "entry 2 'redis://b/0' is listed twice"),
    ],
)
def test_a_bad_layer_url_stops_start_up_with_one_line_naming_it(value, says, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        MARKETFEED_VAR_DIR=str(tmp_path),
        REDIS_URL="redis://127.0.0.1:6379/0",
        REDIS_LAYER_URLS=value,
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout(60),
    )
    assert (result.returncode, result.stderr.count("\n")) == (2, 1), result.stderr
    assert result.stderr.startswith(
        f"marketfeed: configuration error: REDIS_LAYER_URLS: {says}"
    ), result.stderr


@pytest.mark.parametrize("backend", [RedisPubSubChannelLayer, RedisChannelLayer])
async def test_healthz_probes_a_group_on_every_redis_of_the_layer(backend):
    # No server is contacted: which host a name goes to is the layer's own arithmetic.
    # A channels-redis upgrade that hid it would leave /healthz checking one host.
    for size in range(1, 6):
        layer = backend(hosts=[f"redis://127.0.0.1:{6379 + i}/0" for i in range(size)])
        groups = probe_groups(layer)
        if backend is RedisChannelLayer:
            hosts = {layer.consistent_hash(group) for group in groups}
        else:
            loop_layer = layer._get_layer()
            hosts = {
                id(loop_layer._get_shard(loop_layer._get_group_channel_name(group)))
                for group in groups
            }
        assert (len(groups), len(hosts)) == (size, size), groups


@pytest.mark.redis
@pytest.mark.live
async def test_everything_sent_over_a_sharded_layer_arrives_on_both_servers(sharded):
    arrived = asyncio.Event()
    watchers = [Watcher(s.ws_url, sharded.token, arrived) for s in sharded.servers]
    tasks = [asyncio.create_task(w.run()) for w in watchers]
    try:
        # Quotes of every symbol on both servers, the same seq (and prices) on both.
        def common() -> dict[str, set[int]]:
            a, b = (w.quotes for w in watchers)
            return {s: set(a[s]) & set(b[s]) for s in SYMBOLS}

        await until(
            lambda: all(common().values()), arrived, tasks, 30,
            lambda: f"a seq seen on both servers for every symbol: {common()}",
        )
        for symbol, seqs in common().items():
            for seq in seqs:
                assert watchers[0].quotes[symbol][seq] == watchers[1].quotes[symbol][seq]

        # The groups really are on both servers, each on one, with both processes in it.
        placed = [groups_on(r.url, sharded.layer) for r in sharded.redis]
        print(f"{sharded.layer}: groups per Redis {placed}")
        for symbol in SYMBOLS:
            holders = [g[group_for_symbol(symbol)] for g in placed if group_for_symbol(symbol) in g]
            assert holders == [2], f"{symbol}: {placed}"
        for there in placed:
            assert any(group_for_symbol(s) in there for s in SYMBOLS), placed
        merged = {name: n for there in placed for name, n in there.items()}
        assert merged[SERVERS_CONTROL_GROUP] == 2  # every server's hub
        assert merged[TICKER_CONTROL_GROUP] == 1  # the ticker

        # /healthz checks the layer on every Redis it spans.
        for server in sharded.servers:
            status, body = await asyncio.to_thread(healthz, server.url)
            assert (status, body["channel_layer"]) == (200, "ok"), (body, server.log[-10:])

        # A halt from a shell: the ticker's control group, then each symbol's own group.
        halt = (
            "from feeds.models import Instrument as I; "
            "from feeds.services import instrument_halt as h; "
            f"h(instruments=I.objects.filter(symbol__in={HALTED!r}))"
        )
        await asyncio.to_thread(manage, sharded.env, "shell", "--no-imports", "-c", halt)
        await until(
            lambda: all(w.halted >= set(HALTED) for w in watchers), arrived, tasks, 10,
            lambda: f"{HALTED} halted on both servers: {[w.halted for w in watchers]}",
        )

        # An operator disables the user in a shell: the servers' control group closes both.
        disable = (
            "from django.contrib.auth import get_user_model; "
            "u = get_user_model().objects.get(username='clusteruser'); "
            "u.is_active = False; u.save()"
        )
        await asyncio.to_thread(manage, sharded.env, "shell", "--no-imports", "-c", disable)
        saved = time.monotonic()
        await until(
            lambda: all(w.close_code is not None for w in watchers), arrived, tasks,
            REVOKED_WITHIN_S,
            lambda: f"both closed: codes {[w.close_code for w in watchers]}",
        )
        for w in watchers:
            assert (w.close_code, w.errors) == (4401, ["unauthorized"])
            print(f"closed {w.closed_at - saved:.3f} s after the shell returned")
    finally:
        await stop(*tasks)

    # With one of the two servers gone, the layer is down: /healthz says so.
    sharded.redis[1].stop()
    for server in sharded.servers:
        status, body = await asyncio.to_thread(healthz, server.url)
        assert (status, body["channel_layer"], body["store"]) == (503, "unavailable", "ok"), (
            body, server.log[-10:]
        )
