"""A real Redis for the scale-out tests: REDIS_URL when set, else a private redis-server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from tests.servers import free_port
from tests.timeouts import timeout


@pytest.fixture(scope="session")
def redis_url():
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("no REDIS_URL and no redis-server on PATH: scale-out tests need a real Redis")
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", workdir],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:  # ready when it says so: an event, not a sleep
            if "Ready to accept connections" in line:
                break
        else:
            pytest.fail("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
        proc.terminate()
        proc.wait(timeout(10))
        proc.stdout.close()


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
