"""The ticker's pub/sub bus (feeds/publish/bus.py) against real Redis servers.

It must send what channels-redis's own ``group_send`` sends, where it sends it,
so a hub on the layer cannot tell the two apart; save and publish in one
command on the store's Redis; publish nothing when fenced; carry the store's
epoch; and on a layer sharded over two servers lose only the quotes of a
shard that is away.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis.asyncio as redis
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from feeds.core import events
from feeds.core.groups import group_for_symbol
from feeds.publish.bus import LayerBus, RedisPubSubBus, bus_for
from feeds.publish.redis_store import RedisStore
from feeds.publish.store import Fenced, MemoryStore
from marketfeed.config import channel_layers
from marketfeed.localredis import LocalRedis, LocalRedisError
from tests.timeouts import timeout

# Private redis-servers.
pytestmark = [pytest.mark.redis, pytest.mark.live]

SYMBOLS = ["AAPL", "MSFT", "NVDA", "META", "EUR/USD", "BTC-USD", "GOOGL", "TSLA"]


def layer_of(urls: list[str], store_url: str) -> RedisPubSubChannelLayer:
    """The layer settings would build: on the store's Redis, or sharded over ``urls``."""
    config = channel_layers(store_url, None, "pubsub", urls if len(urls) > 1 else [])["default"]
    return RedisPubSubChannelLayer(**config["CONFIG"])


class Hub:
    """A hub's channel on ``layer``, in the groups of ``symbols``, collecting what arrives.

    One receive runs all along: channels-redis drops a channel whose receive is cancelled.
    """

    def __init__(self, layer: RedisPubSubChannelLayer) -> None:
        self.layer = layer
        self.got: list[dict] = []
        self.arrived = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def join(self, symbols: list[str]) -> Hub:
        channel = await self.layer.new_channel("hub.")
        for symbol in symbols:
            await self.layer.group_add(group_for_symbol(symbol), channel)
        self.task = asyncio.create_task(self._receive(channel))
        return self

    async def _receive(self, channel: str) -> None:
        while True:
            message = await self.layer.receive(channel)
            self.got.append(message)  # the list of now, not of before the wait
            self.arrived.set()

    async def take(self, count: int, within_s: float = 5.0) -> list[dict]:
        """The next ``count`` messages, once no more follow for a moment."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout(within_s)):
                while len(self.got) < count:
                    self.arrived.clear()
                    await self.arrived.wait()
        await asyncio.sleep(0.3)
        got, self.got = self.got, []
        return got

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        with contextlib.suppress(Exception):
            await self.layer.flush()


def quotes(seq: int, symbols: list[str] = SYMBOLS) -> list[tuple[str, int, str]]:
    return [(s, seq, f'{{"type":"quote","symbol":"{s}","seq":{seq}}}') for s in symbols]


async def test_the_bus_sends_what_group_send_sends_in_one_command_per_pass(private_redis):
    store = RedisStore(private_redis.url)
    ticker_side = layer_of([private_redis.url], private_redis.url)
    hub = await Hub(layer_of([private_redis.url], private_redis.url)).join(SYMBOLS)
    admin = redis.Redis.from_url(private_redis.url, client_name="admin")
    try:
        bus = bus_for(ticker_side, store)
        assert isinstance(bus, RedisPubSubBus)
        epoch = await store.epoch()
        await bus.publish(quotes(1), epoch=epoch, fence=None)  # loads the script
        assert len(await hub.take(len(SYMBOLS))) == len(SYMBOLS)
        await admin.config_set("slowlog-log-slower-than", 0)
        await admin.slowlog_reset()
        for seq in (2, 3):
            done = await bus.publish(quotes(seq), epoch=epoch, fence=None)
            assert (done.epoch, done.sent, done.failure) == (epoch, len(SYMBOLS), None)
        log = await admin.execute_command("SLOWLOG", "GET", 1000)
        sent = [c[0].lower() for *_, c, addr, name in log if addr != b"?:0" and name != b"admin"]
        assert sent == [b"evalsha", b"evalsha"]  # no PUBLISH of its own: the script made them
        # What channels-redis itself sends for the same quote, through the same layer.
        await LayerBus(ticker_side, store).send(quotes(4, ["AAPL"]), epoch)
        expected = [
            events.quote(symbol=s, seq=seq, text=t, epoch=epoch)
            for seq, symbols in ((2, SYMBOLS), (3, SYMBOLS), (4, ["AAPL"]))
            for s, _, t in quotes(seq, symbols)
        ]
        assert await hub.take(len(expected)) == expected  # in seq order
        assert await store.latest(["AAPL"]) == {"AAPL": (3, quotes(3)[0][2])}
    finally:
        await hub.close()
        await ticker_side.flush()
        await admin.aclose()
        await store.aclose()


async def test_a_fenced_ticker_publishes_nothing_and_a_new_epoch_reaches_the_messages(
    private_redis,
):
    store = RedisStore(private_redis.url)
    ticker_side = layer_of([private_redis.url], private_redis.url)
    hub = await Hub(layer_of([private_redis.url], private_redis.url)).join(["AAPL"])
    admin = redis.Redis.from_url(private_redis.url)
    try:
        bus = bus_for(ticker_side, store)
        epoch = await store.epoch()
        assert await store.lease_take("other", 5)
        with pytest.raises(Fenced):
            await bus.publish(quotes(1, ["AAPL"]), epoch=epoch, fence="me")
        assert await hub.take(1, within_s=0.5) == []
        # The store lost its data and a server made a new epoch before the ticker's next pass.
        await admin.flushdb()
        fresh = await store.epoch()
        done = await bus.publish(quotes(2, ["AAPL"]), epoch=epoch, fence=None)
        assert (done.epoch, done.sent) == (fresh, 1)
        assert fresh != epoch
        assert [m["epoch"] for m in await hub.take(1)] == [fresh]
    finally:
        await hub.close()
        await ticker_side.flush()
        await admin.aclose()
        await store.aclose()


async def test_on_two_shards_a_shard_away_loses_only_its_own_quotes():
    with contextlib.ExitStack() as stack:
        try:
            first, second = (
                stack.enter_context(LocalRedis(start_timeout=timeout(30))) for _ in range(2)
            )
        except LocalRedisError as exc:
            pytest.fail(f"the sharding test needs two real Redis servers: {exc}")
        urls = [first.url, second.url]
        store = RedisStore(first.url)
        ticker_side = layer_of(urls, first.url)
        hub = await Hub(layer_of(urls, first.url)).join(SYMBOLS)
        try:
            bus = bus_for(ticker_side, store)
            loop_layer = ticker_side._get_layer()
            on_second = {
                s for s in SYMBOLS
                if loop_layer._get_shard(loop_layer._get_group_channel_name(group_for_symbol(s)))
                is loop_layer._shards[1]
            }
            assert 0 < len(on_second) < len(SYMBOLS)  # the symbols span both servers
            epoch = await store.epoch()
            done = await bus.publish(quotes(1), epoch=epoch, fence=None)
            assert (done.sent, done.failure) == (len(SYMBOLS), None)
            assert sorted(m["symbol"] for m in await hub.take(len(SYMBOLS))) == sorted(SYMBOLS)
            second.stop()
            done = await bus.publish(quotes(2), epoch=epoch, fence=None)
            assert done.sent == len(SYMBOLS) - len(on_second)
            assert isinstance(done.failure, Exception)
            got = await hub.take(len(SYMBOLS) - len(on_second))
            assert sorted(m["symbol"] for m in got) == sorted(set(SYMBOLS) - on_second)
        finally:
            await hub.close()
            with contextlib.suppress(Exception):
                await ticker_side.flush()
            await store.aclose()


def test_other_layers_and_stores_keep_group_send(redis_url):
    pubsub = layer_of([redis_url], redis_url)
    assert type(bus_for(pubsub, MemoryStore())) is LayerBus
    core = RedisChannelLayer(hosts=[redis_url])
    assert type(bus_for(core, RedisStore(redis_url))) is LayerBus
