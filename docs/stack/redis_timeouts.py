"""redis-py 8's connection defaults against channels-redis, on a private redis-server.

    .venv/bin/python -m docs.stack.redis_timeouts

Starts a throw-away ``redis-server`` (``marketfeed.localredis``), then:

1. prints the socket timeout and pool size redis-py gives a client built from
   a URL, as channels-redis builds its pools;
2. waits 12 s on an empty channel of channels-redis' ``RedisChannelLayer``
   (whose BRPOP blocks 5 s at a time), once with redis-py's default socket
   timeout and once with ``socket_timeout: None`` as marketfeed/settings.py
   configures it, and prints how each wait ended;
3. runs 150 blocking commands at once on a default client and on one with
   ``max_connections=1000`` (feeds/publish/redis_store.py), and counts the
   ones refused.

Takes about 30 s. docs/STACK.md quotes its output.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis
import redis.asyncio as aredis
from channels_redis.core import RedisChannelLayer

from marketfeed.localredis import LocalRedis


async def defaults(url: str) -> None:
    client = aredis.Redis.from_url(url)
    connection = client.connection_pool.make_connection()  # not connected, only built
    print(f"1. redis-py {redis.__version__}, Redis.from_url(url): a connection's socket_timeout="
          f"{connection.socket_timeout!r} s, pool max_connections="
          f"{client.connection_pool.max_connections}")
    await client.aclose()


async def idle_receive(url: str, host_options: dict[str, Any], wait_s: float = 12.0) -> str:
    layer = RedisChannelLayer(hosts=[{"address": url, **host_options}])
    channel = await layer.new_channel()
    start = time.monotonic()
    try:
        await asyncio.wait_for(layer.receive(channel), wait_s)
        outcome = "a message (unexpected)"
    except TimeoutError:
        outcome = f"still waiting, healthy, when the demo stopped it at {wait_s:.0f} s"
    except Exception as exc:
        after = time.monotonic() - start
        outcome = f"{type(exc).__module__}.{type(exc).__name__}: {exc} after {after:.1f} s"
    await layer.flush()
    return outcome


async def concurrent_blocking(url: str, **options: Any) -> str:
    client = aredis.Redis.from_url(url, **options)
    results = await asyncio.gather(
        *(client.blpop(["nothing-here"], timeout=1) for _ in range(150)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, Exception)]
    await client.aclose()
    kinds = sorted({f"{type(r).__name__}: {r}" for r in refused})
    return f"{len(refused)} of 150 refused" + (f" ({'; '.join(kinds)})" if kinds else "")


async def main() -> None:
    with LocalRedis() as local:
        url = local.url
        await defaults(url)
        print("\n2. RedisChannelLayer.receive() on an empty channel, 12 s")
        print(f"   default socket_timeout: {await idle_receive(url, {})}")
        print(f"   socket_timeout None:    {await idle_receive(url, {'socket_timeout': None})}")
        print("\n3. 150 concurrent BLPOP (1 s) on one client")
        print(f"   default pool:          {await concurrent_blocking(url)}")
        print(f"   max_connections=1000:  {await concurrent_blocking(url, max_connections=1000)}")


if __name__ == "__main__":
    asyncio.run(main())
