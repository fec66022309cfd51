"""The quote store on Redis, shared by the ticker and every server process.

Keys (prefix ``mf:``): ``epoch`` (string), ``latest`` (hash: symbol ->
``"<seq> <quote text>"``), ``conns:<user>`` (sorted set: connection id ->
expiry time, for the per-user connection limit across processes).

One client per event loop: REST views reach the store through
``async_to_sync``, which may run on a loop of its own, and a redis-py asyncio
connection must not cross loops.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterable

import redis.asyncio as redis

from feeds.store import SavedQuote, new_epoch

PREFIX = "mf:"
# A connection counts against its user's limit for this long unless released;
# bounds the damage of a server that died without releasing its connections.
CONNECTION_TTL_S = 24 * 3600

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class RedisStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.Redis] = (
            weakref.WeakKeyDictionary()
        )

    def _redis(self) -> redis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # socket_timeout None: redis-py 8's default (5 s) breaks blocking reads (PITFALLS.md).
            client = redis.Redis.from_url(
                self.url, decode_responses=True, socket_timeout=None, socket_connect_timeout=5,
                health_check_interval=30, max_connections=1000,
            )
            self._clients[loop] = client
        return client

    async def epoch(self) -> str:
        r = self._redis()
        current = await r.get(PREFIX + "epoch")
        if current is None:
            await r.set(PREFIX + "epoch", new_epoch(), nx=True)
            current = await r.get(PREFIX + "epoch")
        return str(current)

    async def save(self, quotes: list[SavedQuote]) -> None:
        if quotes:
            await self._redis().hset(
                PREFIX + "latest", mapping={symbol: f"{seq} {text}" for symbol, seq, text in quotes}
            )

    async def latest(self, symbols: Iterable[str]) -> dict[str, tuple[int, str]]:
        wanted = list(symbols)
        if not wanted:
            return {}
        values = await self._redis().hmget(PREFIX + "latest", wanted)
        out: dict[str, tuple[int, str]] = {}
        for symbol, value in zip(wanted, values, strict=True):
            if value:
                seq, _, text = value.partition(" ")
                out[symbol] = (int(seq), text)
        return out

    async def connection_acquire(self, user_key: str, conn_id: str, limit: int) -> bool:
        now = time.time()
        result = await self._redis().eval(
            _ACQUIRE, 1, PREFIX + "conns:" + user_key, now, now + CONNECTION_TTL_S, limit, conn_id,
            CONNECTION_TTL_S,
        )
        return bool(result)

    async def connection_release(self, user_key: str, conn_id: str) -> None:
        await self._redis().zrem(PREFIX + "conns:" + user_key, conn_id)

    async def ping(self) -> None:
        await self._redis().ping()

    async def aclose(self) -> None:
        """Close this loop's connections (at shutdown, and between tests)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
