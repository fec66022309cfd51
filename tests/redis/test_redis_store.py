"""RedisStore against a real Redis server."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.redis


async def test_latest_returns_what_was_saved_with_its_seq(store):
    await store.save([("AAPL", 3, '{"type":"quote","seq":3}'), ("EUR/USD", 9, '{"type":"quote","seq":9}')])
    await store.save([("AAPL", 4, '{"type":"quote","seq":4}')])
    assert await store.latest(["EUR/USD", "AAPL", "NOPE"]) == {
        "AAPL": (4, '{"type":"quote","seq":4}'),
        "EUR/USD": (9, '{"type":"quote","seq":9}'),
    }


async def test_every_process_sees_one_epoch_until_the_store_is_lost(store, redis_url):
    other = store.another()  # another server process
    first = await store.epoch()
    assert await other.epoch() == first
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    assert await other.epoch() != first


async def test_connection_limit_holds_across_processes(store, redis_url):
    other = store.another()
    assert await store.connection_acquire("7", "a", 2)
    assert await other.connection_acquire("7", "b", 2)
    assert not await other.connection_acquire("7", "c", 2)
    await store.connection_release("7", "a")
    assert await other.connection_acquire("7", "c", 2)
    assert await store.connection_acquire("8", "x", 2)  # per user


async def test_ping_answers(store):
    await store.ping()
