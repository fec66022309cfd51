"""The quote store on Redis, shared by the ticker and every server process.

Keys (prefix ``mf:``): ``epoch`` (string), ``latest`` (hash: symbol ->
``"<seq> <quote text>"``), ``leader`` (string: the name of the ticker holding
the lease, with a TTL), ``conns:<user>`` (sorted set: connection id -> expiry
time, for the per-user connection limit across processes), ``ring:<symbol>``
(list, newest first: the last ``ring`` values of ``latest`` for that symbol,
the resume ring).

A save is one Lua script, so the fence check, the epoch, the quotes and their
ring entries are one atomic step and one round trip per batch: once another
ticker holds the lease, not one quote of the old leader's lands in the store,
and a quote not in the store is never published. The script can also publish
the batch's layer messages right after the save (``save_and_publish``,
feeds/publish/bus.py): a ticker pass is then one round trip, and a fenced
ticker publishes nothing. It runs by its SHA1 (``EVALSHA``), loaded again
after a Redis restart. A replay is one script too, for all the symbols asked;
the ring is checked to run on unbroken from the latest seq
(``store.missed_since``), so a reset never mixes two numberings.

One client per event loop: REST views reach the store through
``async_to_sync``, which may run on a loop of its own, and a redis-py asyncio
connection must not cross loops.

Behind Sentinel (``settings.REDIS_SENTINEL``, marketfeed/redis_sentinel.py)
the client's connections come from redis-py's ``SentinelConnectionPool``: every
new connection asks the sentinels where the master is. A fail-over breaks the
connections to the old master, and the command retries (``COMMAND_RETRIES``)
reconnect through the sentinels, so the store, and the ticker's lease with it,
move to the new master by themselves; until Sentinel has promoted one, the
retries fail and the callers report an outage as for any Redis that is away.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis
import redis.asyncio as aredis
import redis.asyncio.sentinel
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from feeds.publish.redis_batch import Batched
from feeds.publish.redis_connect import sentinel_parts
from feeds.publish.store import DEFAULT_RING, Fenced, SavedQuote, missed_since, new_epoch

PREFIX = "mf:"
# After a Redis restart the pool's connections are dead; a command retries on a new
# one this many times (50, 100, 200 ms apart) before it fails. Every command here is
# safe to repeat (the save rewrites the same values; the lease and counts are sets).
COMMAND_RETRIES = 3
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

# KEYS: latest, epoch, leader, then one ring key per quote (none when the ring
# is off). ARGV: fence ("" for none), epoch ("" for a new one), ttl of a lease
# taken over here (ms), ring length, the number n of quotes, then n symbol,
# value pairs, then channel, message pairs to PUBLISH once the quotes are saved.
# A lease that vanished (Redis restarted empty) is taken back by its holder.
# The messages name the epoch they were made for (ARGV[2]): under another one
# they stay unpublished ({3, epoch}) and the caller makes them anew.
_SAVE = """
if ARGV[1] ~= '' then
  local holder = redis.call('GET', KEYS[3])
  if holder == false then
    redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[3])
  elseif holder ~= ARGV[1] then
    return {0, holder}
  end
end
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'NX') end
local epoch = redis.call('GET', KEYS[2])
if epoch == false then return {2, ''} end
local last = 5 + 2 * tonumber(ARGV[5])
for i = 6, last, 500 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 499, last)))
end
local keep = tonumber(ARGV[4]) - 1
for k = 4, #KEYS do
  redis.call('LPUSH', KEYS[k], ARGV[2 * k - 1])
  redis.call('LTRIM', KEYS[k], 0, keep)
end
if last == #ARGV then return {1, epoch} end
if epoch ~= ARGV[2] then return {3, epoch} end
for i = last + 1, #ARGV, 2 do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return {1, epoch}
"""

# KEYS: latest, then one ring key per symbol. ARGV: per symbol, the symbol and
# the seq to replay after. For each: {latest seq (0: no quote), ring entries
# above that seq, newest first}.
_REPLAY = """
local out = {}
for k = 2, #KEYS do
  local value = redis.call('HGET', KEYS[1], ARGV[2 * k - 3])
  local newest = value and tonumber(string.match(value, '^%d+')) or 0
  local missed = newest - tonumber(ARGV[2 * k - 2])
  local entries = {}
  if missed > 0 then entries = redis.call('LRANGE', KEYS[k], 0, missed - 1) end
  out[k - 1] = {newest, entries}
end
return out
"""

# KEYS: leader. ARGV: holder, ttl (ms). Take the lease if it is free or ours.
_LEASE_TAKE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_LEASE_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_SAVE_SHA1 = hashlib.sha1(_SAVE.encode()).hexdigest()


class RedisStore:
    def __init__(
        self, url: str, *, lease_s: float = 3.0, ring: int = DEFAULT_RING,
        sentinel: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url
        # The Sentinel entry from settings (REDIS_SENTINEL): the master is found through it.
        self.sentinel = dict(sentinel) if sentinel else None
        self.ring = ring
        # A save that finds the lease gone (Redis restarted empty) re-takes it this long.
        self.lease_ms = int(lease_s * 1000)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aredis.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._batch = Batched(self._redis)  # a handshake storm's counting: one round trip a batch

    def _redis(self) -> aredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # socket_timeout None: redis-py 8's default (5 s) breaks blocking reads
            # (docs/STACK.md, "Redis timeouts").
            options: dict[str, Any] = dict(
                decode_responses=True, socket_timeout=None, socket_connect_timeout=5,
                health_check_interval=30, max_connections=1000,
                retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), COMMAND_RETRIES),
            )
            if self.sentinel is None:
                client = aredis.Redis.from_url(self.url, **options)
            else:
                sentinels, name, sentinel_kwargs, connection = sentinel_parts(self.sentinel)
                manager = redis.asyncio.sentinel.Sentinel(
                    sentinels, sentinel_kwargs=sentinel_kwargs
                )
                # A SentinelConnectionPool: each (re)connection asks the sentinels for the master.
                client = manager.master_for(name, **connection, **options)
            self._clients[loop] = client
        return client

    async def epoch(self) -> str:
        current = await self._batch(lambda pipe: pipe.get(PREFIX + "epoch"))
        return str(current) if current is not None else await self._new_epoch()

    async def _new_epoch(self) -> str:
        """Make the fresh store's epoch, or take the one another process made first."""
        r = self._redis()
        await r.set(PREFIX + "epoch", new_epoch(), nx=True)
        return str(await r.get(PREFIX + "epoch"))

    async def save(
        self, quotes: list[SavedQuote], *, epoch: str | None = None, fence: str | None = None
    ) -> str:
        return (await self.save_and_publish(quotes, epoch=epoch, fence=fence))[0]

    async def save_and_publish(
        self,
        quotes: list[SavedQuote],
        *,
        epoch: str | None = None,
        fence: str | None = None,
        publish: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[str, bool]:
        """``save``, then PUBLISH each ``(channel, message)`` in the same script.

        The messages are published only if the quotes were saved under
        ``epoch``, the one they carry; returns the store's epoch and whether
        they went out (a fenced save raises ``Fenced`` and publishes nothing).
        """
        if epoch is None and not quotes:  # nothing to write and no epoch to offer
            return await self.epoch(), not publish
        args: list[Any] = [fence or "", epoch or "", self.lease_ms, self.ring, len(quotes)]
        keys = [PREFIX + "latest", PREFIX + "epoch", PREFIX + "leader"]
        for symbol, seq, text in quotes:
            args += (symbol, f"{seq} {text}")
        if self.ring:
            keys += (_ring_key(symbol) for symbol, _, _ in quotes)
        if epoch:
            for channel, message in publish:
                args += (channel, message)
        try:
            status, value = await self._redis().evalsha(_SAVE_SHA1, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:  # Redis restarted: load the script again
            await self._redis().script_load(_SAVE)
            status, value = await self._redis().evalsha(_SAVE_SHA1, len(keys), *keys, *args)
        if status == 0:
            raise Fenced(f"the lease is held by {value}")
        if status == 2:  # no epoch anywhere yet: make one, then save
            return await self.save(quotes, epoch=await self.epoch(), fence=fence), not publish
        return str(value), status == 1 and (bool(epoch) or not publish)

    async def latest(self, symbols: Iterable[str]) -> dict[str, tuple[int, str]]:
        wanted = list(symbols)
        if not wanted:
            return {}
        values = await self._batch(lambda pipe: pipe.hmget(PREFIX + "latest", wanted))
        return _latest(wanted, values)

    async def snapshot(self, symbols: Iterable[str]) -> tuple[dict[str, tuple[int, str]], str]:
        wanted = list(symbols)
        if not wanted:  # HMGET needs a field
            return {}, await self.epoch()
        values, current = await self._batch(
            lambda pipe: pipe.hmget(PREFIX + "latest", wanted).get(PREFIX + "epoch"), replies=2
        )
        epoch = str(current) if current is not None else await self._new_epoch()
        return _latest(wanted, values), epoch

    async def replay(self, since: dict[str, int]) -> dict[str, list[str] | None]:
        """One round trip for all of ``since``.

        Each ring is checked to run on unbroken (store.missed_since).
        """
        if not since or not self.ring:
            return dict.fromkeys(since)
        symbols = list(since)
        keys = [PREFIX + "latest", *map(_ring_key, symbols)]
        args = [arg for symbol in symbols for arg in (symbol, since[symbol])]
        rings = await self._redis().eval(_REPLAY, len(keys), *keys, *args)
        return {
            symbol: missed_since(map(_seq_and_text, entries), since[symbol], newest)
            for symbol, (newest, entries) in zip(symbols, rings, strict=True)
        }

    async def connection_acquire(self, user_key: str, conn_id: str, limit: int) -> bool:
        now, key = time.time(), PREFIX + "conns:" + user_key
        args = (now, now + CONNECTION_TTL_S, limit, conn_id, CONNECTION_TTL_S)
        return bool(await self._batch(lambda pipe: pipe.eval(_ACQUIRE, 1, key, *args)))

    async def connection_release(self, user_key: str, conn_id: str) -> None:
        await self._batch(lambda pipe: pipe.zrem(PREFIX + "conns:" + user_key, conn_id))

    # --- the ticker's leader lease ----------------------------------------------------------------

    async def lease_take(self, holder: str, ttl_s: float) -> bool:
        """Take (or renew) the lease for ``ttl_s``; False while someone else holds it."""
        taken = await self._redis().eval(
            _LEASE_TAKE, 1, PREFIX + "leader", holder, int(ttl_s * 1000)
        )
        return bool(taken)

    async def lease_release(self, holder: str) -> None:
        await self._redis().eval(_LEASE_RELEASE, 1, PREFIX + "leader", holder)

    async def lease_holder(self) -> str | None:
        return await self._redis().get(PREFIX + "leader")

    async def ping(self) -> None:
        await self._redis().ping()

    async def aclose(self) -> None:
        """Close this loop's connections (at shutdown, and between tests)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            manager = getattr(client.connection_pool, "sentinel_manager", None)
            await client.aclose()
            if manager is not None:  # its connections to the sentinels
                await manager.aclose()


def _ring_key(symbol: str) -> str:
    return PREFIX + "ring:" + symbol


def _latest(symbols: list[str], values: list[str | None]) -> dict[str, tuple[int, str]]:
    return {s: _seq_and_text(v) for s, v in zip(symbols, values, strict=True) if v}


def _seq_and_text(value: str) -> tuple[int, str]:
    """A stored ``"<seq> <quote text>"`` value, split."""
    seq, _, text = value.partition(" ")
    return int(seq), text
