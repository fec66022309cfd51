"""How a ticker pass reaches the bus: the quotes saved in the store, then one message per quote.

Each quote goes to its instrument's group (``feeds.core.groups``), one layer
message per quote, never a batch across instruments: on a layer sharded over
several Redis servers a message lives on one shard, and one shard away must
cost only its own instruments. Two ways to do that, the same messages either way:

- ``LayerBus``, for any channel layer: ``store.save``, then ``group_send`` per
  quote (a round trip each on Redis).
- ``RedisPubSubBus``, for channels-redis's pub/sub layer on the Redis store:
  there a group message is one ``PUBLISH`` of the serialized event on the
  group's pub/sub channel, on the layer host that channel hashes to. The bus
  makes those same ``PUBLISH`` es (the layer's own channel names, shard choice
  and serializer, so the hubs' receive is untouched). Those for the store's
  own Redis ride in the save script, published right after the save in the same
  atomic step: a pass of quotes is one round trip, and a fenced ticker
  publishes nothing. Those for other shards go out after the save, one
  pipelined round trip per shard, the shards at once; a shard away loses only
  its own quotes, as with ``group_send``.

Either way a quote not in the store is never published, and quotes leave in
``seq`` order per instrument (docs/PROTOCOL.md). docs/SCALING.md has what
the second way saves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from feeds.core import events
from feeds.core.groups import group_for_symbol
from feeds.publish.redis_store import RedisStore
from feeds.publish.store import QuoteStore, SavedQuote


@dataclass(frozen=True, slots=True)
class Published:
    """A pass on the bus: the store's epoch, the quotes that went out, the first failure."""

    epoch: str
    sent: int
    failure: BaseException | None = None


class LayerBus:
    def __init__(self, layer: Any, store: QuoteStore) -> None:
        self.layer = layer
        self.store = store

    async def publish(
        self, quotes: list[SavedQuote], *, epoch: str | None, fence: str | None
    ) -> Published:
        # The store may hand back another epoch (it lost its data and a server made
        # a new one): the quotes then belong to that one, and servers resnapshot.
        epoch = await self.store.save(quotes, epoch=epoch, fence=fence)
        return await self.send(quotes, epoch)

    async def send(self, quotes: Sequence[SavedQuote], epoch: str) -> Published:
        """``group_send`` each quote; a group that fails does not stop the others."""
        send = self.layer.group_send
        sent, failure = 0, None
        for symbol, seq, text in quotes:
            try:
                await send(
                    group_for_symbol(symbol),
                    events.quote(symbol=symbol, seq=seq, text=text, epoch=epoch),
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one layer shard away must not stop the others' quotes
                failure = failure or exc
                continue
            sent += 1
        return Published(epoch, sent, failure)


class RedisPubSubBus(LayerBus):
    store: RedisStore

    def __init__(self, layer: Any, store: RedisStore) -> None:
        super().__init__(layer, store)
        self._loop_layer: Any = None
        self._routes: dict[str, tuple[str, Any]] = {}  # symbol -> (pub/sub channel, shard)
        self._store_shards: set[int] = set()

    def _route(self, symbol: str) -> tuple[str, Any]:
        """The pub/sub channel ``group_send`` would publish ``symbol``'s quotes on, and its shard.

        The shard is None when it is the store's own Redis.
        """
        loop_layer = self.layer._get_layer()  # channels-redis keeps one per event loop
        if loop_layer is not self._loop_layer:
            self._loop_layer, self._routes = loop_layer, {}
            self._store_shards = {
                id(shard) for shard in loop_layer._shards if _is_store(shard.host, self.store)
            }
        route = self._routes.get(symbol)
        if route is None:
            channel = loop_layer._get_group_channel_name(group_for_symbol(symbol))
            shard = loop_layer._get_shard(channel)
            route = self._routes[symbol] = (
                channel, None if id(shard) in self._store_shards else shard
            )
        return route

    async def publish(
        self, quotes: list[SavedQuote], *, epoch: str | None, fence: str | None
    ) -> Published:
        serialize = self.layer.serialize
        here: list[tuple[str, bytes]] = []
        elsewhere: dict[Any, list[tuple[str, bytes]]] = {}
        for symbol, seq, text in quotes:
            channel, shard = self._route(symbol)
            message = (
                channel, serialize(events.quote(symbol=symbol, seq=seq, text=text, epoch=epoch))
            )
            if shard is None:
                here.append(message)
            else:
                elsewhere.setdefault(shard, []).append(message)
        saved, done = await self.store.save_and_publish(
            quotes, epoch=epoch, fence=fence, publish=here
        )
        if saved != epoch or not done:  # another epoch in the store: the messages made anew
            return await self.send(quotes, saved)
        sent = len(here)
        failure = None
        if elsewhere:
            results = await asyncio.gather(
                *(_pipelined(shard, messages) for shard, messages in elsewhere.items()),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, asyncio.CancelledError):
                    raise result
                if isinstance(result, BaseException):
                    failure = failure or result
                else:
                    sent += result
        return Published(saved, sent, failure)


async def _pipelined(shard: Any, messages: list[tuple[str, bytes]]) -> int:
    """PUBLISH ``messages`` on one shard of the layer in one round trip, in order."""
    async with shard._lock:  # the lock and connection channels-redis's own publish uses
        shard._ensure_redis()
        pipe = shard._redis.pipeline(transaction=False)
        for channel, message in messages:
            pipe.publish(channel, message)
        await pipe.execute()
    return len(messages)


def _is_store(host: dict[str, Any], store: RedisStore) -> bool:
    """Whether a layer host (marketfeed/config.py) is the Redis the store writes to."""
    if store.sentinel is not None:
        return host.get("master_name") == store.sentinel.get("master_name") and _addresses(
            host.get("sentinels")
        ) == _addresses(store.sentinel.get("sentinels"))
    return host.get("address") == store.url


def _addresses(sentinels: Any) -> list[tuple[str, int]]:
    return [(str(host), int(port)) for host, port in sentinels or ()]


def bus_for(layer: Any, store: QuoteStore) -> LayerBus:
    """The cheapest bus that sends what ``group_send`` would on this layer and store."""
    try:
        from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer
    except ImportError:  # pragma: no cover - channels-redis is in the lock
        return LayerBus(layer, store)
    if (
        isinstance(layer, RedisPubSubChannelLayer)
        and isinstance(store, RedisStore)
        and hasattr(layer, "_get_layer")
        and all(hasattr(RedisPubSubLoopLayer, n) for n in ("_get_group_channel_name", "_get_shard"))
    ):
        return RedisPubSubBus(layer, store)
    return LayerBus(layer, store)
