"""Starting and stopping the feed's long-lived parts inside a process.

``build_ticker()`` makes a ``Ticker`` wired to this process's settings, layer,
store and database; ``runticker`` and the embedded mode both use it. In the
embedded default (``FEED_TICKER=embedded``) the server process starts one
ticker on its event loop as soon as the loop runs (``ensure_embedded``).

The process's open WebSockets are registered here (``websocket_open``, by the
ASGI application), so that a shutdown can close every one of them with 1001
(``close_websockets``) and a staff health check can count them
(``process_stats``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from feeds import services
from feeds.groups import SERVERS_CONTROL_GROUP
from feeds.protocol import CloseCode
from feeds.store import get_store
from feeds.ticker import Ticker
from feeds.transport import AsgiSend, attach

logger = logging.getLogger(__name__)

_embedded: dict[asyncio.AbstractEventLoop, asyncio.Task[Ticker]] = {}

# How long a shutdown waits for clients to answer the 1001 close before the
# server drops what is left (a dead peer never answers).
SHUTDOWN_GRACE_S = 2.0
SHUTDOWN_POLL_S = 0.05

# key -> the server's own ASGI ``send`` of one open WebSocket (feeds.transport).
_websockets: dict[object, AsgiSend] = {}


def freeze_startup_objects() -> None:
    """Move everything loaded at start-up out of the garbage collector's sight.

    Django, Twisted and the app are a few hundred thousand objects that live
    as long as the process; every full collection would walk them all again,
    a pause of tens of milliseconds in the middle of the stream.
    """
    gc.collect()
    gc.freeze()


def build_ticker(fence: str | None = None) -> Ticker:
    """A ticker on this process's settings; ``fence`` is the leader lease it runs under."""
    return Ticker(
        layer=get_channel_layer(),
        store=get_store(),
        load=database_sync_to_async(services.instruments_for_ticker),
        fingerprint=database_sync_to_async(services.instruments_fingerprint),
        seed=settings.FEED_SEED,
        time_scale=settings.FEED_TIME_SCALE,
        reload_interval_s=settings.FEED_RELOAD_INTERVAL_S,
        fence=fence,
    )


def ensure_embedded() -> None:
    """Start the in-process ticker on the running loop, once, if settings ask for it."""
    if settings.FEED_TICKER != "embedded":
        return
    loop = asyncio.get_running_loop()
    if loop in _embedded:
        return
    _embedded[loop] = loop.create_task(_start_embedded(), name="embedded-ticker")


async def _start_embedded() -> Ticker:
    delay = 0.5
    while True:
        ticker = build_ticker()
        try:
            await ticker.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. not migrated yet: say so and try again
            logger.error("embedded ticker could not start (%s); retrying in %.0f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            continue
        return ticker


# --- the process's WebSockets ----------------------------------------------------------


@contextlib.contextmanager
def websocket_open(send: AsgiSend) -> Iterator[None]:
    """Register one WebSocket (by the server's own ``send``) while its application runs."""
    key = object()
    _websockets[key] = send
    try:
        yield
    finally:
        _websockets.pop(key, None)


async def close_websockets(code: int = CloseCode.GOING_AWAY, *, grace_s: float = SHUTDOWN_GRACE_S) -> int:
    """Close every open WebSocket with ``code``; wait up to ``grace_s`` for the close to finish.

    Returns how many were closed. Under daphne each close goes out as a close
    frame through ``Transport.close`` (autobahn itself refuses 1001), and the
    wait lasts until every socket is closed, so the frames are on the wire
    before the reactor drops its connections.
    """
    sends = list(_websockets.values())
    transports = [attach(send, buffer_bytes=settings.FEED_WRITE_BUFFER_BYTES) for send in sends]
    results = await asyncio.gather(*(t.close(int(code)) for t in transports), return_exceptions=True)
    failed = sum(1 for r in results if isinstance(r, BaseException))
    logger.info("shutdown: closing %d WebSockets with %d (%d failed)", len(sends), int(code), failed)
    deadline = time.monotonic() + grace_s
    while any(_still_open(send) for send in sends) and time.monotonic() < deadline:
        await asyncio.sleep(SHUTDOWN_POLL_S)
    return len(sends)


def _still_open(send: AsgiSend) -> bool:
    """Whether the daphne connection behind ``send`` still has a socket (False elsewhere)."""
    protocol = getattr(send, "args", (None,))[0]
    transport = getattr(protocol, "transport", None)
    return bool(transport is not None and getattr(transport, "connected", False))


async def process_stats() -> dict[str, Any]:
    """What this process holds, for the staff view of /healthz: counts only, no names."""
    from feeds.hub import get_hub

    hub = await get_hub()
    gc.collect()  # a pause of some ms, for a staff call: count what is really still reachable
    layer = hub.layer
    groups = getattr(layer, "groups", None)  # the in-memory layers' group -> members
    return {
        "pid": os.getpid(),
        "rss_bytes": rss_bytes(),
        "websockets": len(_websockets),
        "connections": len(hub.connections),
        "symbols": len(hub.members),
        "subscriptions": sum(len(members) for members in hub.members.values()),
        "layer_groups": (  # quote groups the hub is a member of (not its control group)
            sum(
                1 for name, members in groups.items()
                if hub.channel in members and name != SERVERS_CONTROL_GROUP
            )
            if isinstance(groups, dict)
            else None
        ),
        "outbox_pending_max": max((c.outbox.pending for c in hub.connections), default=0),
        # Per-connection state that is never freed shows here; RSS seldom shrinks.
        "python_objects": len(gc.get_objects()),
    }


def rss_bytes() -> int:
    """This process's resident set size (Linux /proc), 0 where that is unavailable."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
