"""GET /healthz: does this process reach everything it needs to serve the feed?

200 ``{"status": "ok", "database": "ok", "channel_layer": "ok", "store": "ok"}``
when all three answer; otherwise 503 with ``"status": "unavailable"`` and each
failing part marked ``"unavailable"``. The body never carries an error message
or traceback (it is unauthenticated); the log says what went wrong. An async
view, so under daphne the layer and store checks run on the server's own event
loop, where the consumers use them.

A staff user (session, or ``Authorization: Token ...``) also gets
``"process"``: what this server process holds (open WebSockets, registered
connections, symbols and subscriptions, layer groups joined, the longest
outbox, RSS; ``feeds.deliver.process.FeedProcess.stats``), to watch for leaks from
outside. Counts only; anyone else never sees it. Staff also get ``"server"``:
which of what ASGI does not carry the server underneath provides here (fast
writes, back-pressure, close codes, compression, SSE; ``degraded`` and the
``missing`` pieces when daphne serves but a dependency upgrade took one away;
``feeds.deliver.server.mode``). A degraded process still serves, so it does
not make the check fail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from feeds.auth import user_for_token
from feeds.core import events
from feeds.deliver import server
from feeds.deliver.process import feed_process
from feeds.publish.build import get_store

logger = logging.getLogger(__name__)

# A load balancer polls this; a part slower than this is as good as down.
CHECK_TIMEOUT_S = 2.0
# A group nobody joins: sending to it is a real round trip to the layer's
# backend (Redis PUBLISH / a script) that leaves nothing behind, unlike a send
# to a throwaway channel, which sits in the layer until it expires.
HEALTH_GROUP = "feed.healthz"
# A layer sharded over several Redis servers (REDIS_LAYER_URLS) gets one such
# send per server, so that any one of them being down fails the check.
PROBE_ATTEMPTS_PER_SHARD = 100

OK = "ok"
UNAVAILABLE = "unavailable"


def _database_check() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def check_database() -> None:
    await sync_to_async(_database_check)()


async def check_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    groups = probe_groups(layer)
    await asyncio.gather(*(layer.group_send(group, events.health_check()) for group in groups))


def probe_groups(layer: Any) -> list[str]:
    """Names of groups nobody joins, one on each Redis of the layer, by the layer's own hashing.

    channels-redis hashes a group's name (``RedisChannelLayer``) or the name
    of its Redis channel (``RedisPubSubChannelLayer``) to one of its hosts; a
    layer of one host, or no Redis at all, gets ``HEALTH_GROUP`` alone.
    """
    sharding = _sharding(layer)
    if sharding is None:
        return [HEALTH_GROUP]
    size, shard_of = sharding
    found: dict[int, str] = {}
    for n in range(size * PROBE_ATTEMPTS_PER_SHARD):
        name = HEALTH_GROUP if n == 0 else f"{HEALTH_GROUP}.{n}"
        found.setdefault(shard_of(name), name)
        if len(found) == size:
            break
    return list(found.values())


def _sharding(layer: Any) -> tuple[int, Callable[[str], int]] | None:
    """``(number of hosts, group name -> host index)`` of a channels-redis layer, else None."""
    ring_size = getattr(layer, "ring_size", None)
    if isinstance(ring_size, int) and callable(getattr(layer, "consistent_hash", None)):
        return ring_size, layer.consistent_hash  # RedisChannelLayer
    if callable(getattr(type(layer), "_get_layer", None)):
        # RedisPubSubChannelLayer: one layer per event loop, one connection per host.
        loop_layer = layer._get_layer()
        shards = loop_layer._shards

        def shard_of(group: str) -> int:
            shard = loop_layer._get_shard(loop_layer._get_group_channel_name(group))
            return int(shards.index(shard))

        return len(shards), shard_of
    return None


async def check_store() -> None:
    await get_store().ping()


CHECKS: dict[str, Callable[[], Awaitable[None]]] = {
    "database": check_database,
    "channel_layer": check_channel_layer,
    "store": check_store,
}


async def _run(name: str, check: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except asyncio.CancelledError:
        raise
    except TimeoutError:
        logger.warning("healthz: %s did not answer within %.1f s", name, CHECK_TIMEOUT_S)
        return UNAVAILABLE
    except Exception as exc:
        logger.warning("healthz: %s failed: %s: %s", name, type(exc).__name__, exc)
        return UNAVAILABLE
    return OK


@never_cache
@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database, the channel layer and the quote store all answer, else 503."""
    names = list(CHECKS)
    results = await asyncio.gather(*(_run(name, CHECKS[name]) for name in names))
    body: dict[str, object] = dict(zip(names, results, strict=True))
    healthy = all(result == OK for result in results)
    if await is_staff(request):
        body["process"] = (await feed_process()).stats()
        body["server"] = server.mode()
    return JsonResponse(
        {"status": OK if healthy else UNAVAILABLE, **body}, status=200 if healthy else 503
    )


async def requesting_user(request: HttpRequest) -> Any:
    """The user behind a token header or the session; None when there is none or it cannot be told.

    Unsure (say, no database) counts as nobody: the caller then shows less, never more.
    """
    try:
        header = request.headers.get("Authorization", "")
        kind, _, key = header.partition(" ")
        if kind.lower() == "token":
            return await user_for_token(key.strip())
        user = await request.auser()
    except Exception as exc:
        logger.info("%s: cannot tell who asks (%s: %s)", request.path, type(exc).__name__, exc)
        return None
    return user if user.is_authenticated else None


async def is_staff(request: HttpRequest) -> bool:
    """A staff user by token header or session."""
    user = await requesting_user(request)
    return bool(user is not None and user.is_active and user.is_staff)
