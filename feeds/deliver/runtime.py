"""Starting and stopping the feed's long-lived parts inside a process.

``build_ticker()`` makes a ``Ticker`` wired to this process's settings, layer,
store and database; ``runticker`` and the embedded mode both use it. In the
embedded default (``FEED_TICKER=embedded``) the server process starts one
ticker on its event loop as soon as the loop runs (``ensure_embedded``).

The process's open WebSockets are registered here (``websocket_open``, by the
ASGI application), so that a shutdown can close every one of them with 1001
(``close_websockets``) and a staff health check can count them
(``process_stats``). A planned shutdown is make-before-break
(``shutdown_websockets``): every client is told to ``reconnect`` and given
``FEED_RECONNECT_GRACE_S`` to move before the 1001 (PROTOCOL.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from feeds import services
from feeds.core.groups import SERVERS_CONTROL_GROUP
from feeds.core.protocol import CloseCode, ReconnectReason
from feeds.publish.store import get_store
from feeds.publish.ticker import Ticker
from feeds.deliver.server import AsgiSend, attach

logger = logging.getLogger(__name__)

_embedded: dict[asyncio.AbstractEventLoop, asyncio.Task[Ticker]] = {}

# How long a shutdown waits for clients to answer the 1001 close before the
# server drops what is left (a dead peer never answers).
SHUTDOWN_GRACE_S = 2.0
SHUTDOWN_POLL_S = 0.05

# key -> the server's own ASGI ``send`` of one open WebSocket (feeds.deliver.server).
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


def embedded_ticker(loop: asyncio.AbstractEventLoop | None = None) -> Ticker | None:
    """The embedded ticker of ``loop`` (default: the running one, if any) once it runs, else None."""
    from feeds.deliver.hub import running_loop

    task = _embedded.get(loop or running_loop())  # type: ignore[arg-type]
    if task is None or not task.done() or task.cancelled() or task.exception() is not None:
        return None
    return task.result()


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


@runtime_checkable
class Reconnectable(Protocol):
    """A connection that can be asked to move (the WebSocket consumer)."""

    def announce_reconnect(self, within_s: float, reason: ReconnectReason) -> None: ...


async def shutdown(*, interruptible: bool = False) -> None:
    """What a server process does before it exits: its clients first, then its embedded ticker.

    Stopping the ticker writes its last bars (feeds.publish.bar_writer), which a plain
    exit would lose: up to ``FEED_BARS_FLUSH_S`` of them.
    """
    await shutdown_websockets(interruptible=interruptible)
    ticker = embedded_ticker()
    if ticker is not None:
        await ticker.stop()


async def shutdown_websockets(*, grace_s: float | None = None, interruptible: bool = False) -> int:
    """Make-before-break shutdown: ``reconnect`` to every client, then 1001 whoever is left.

    Clients get up to ``grace_s`` (default ``FEED_RECONNECT_GRACE_S``; 0 closes
    at once) to open a connection elsewhere and close this one; the wait ends
    as soon as every announced client has gone. ``interruptible``: a second
    SIGTERM or SIGINT during the wait cuts it short (under daphne, where the
    first one started the shutdown), so an impatient operator never waits twice.
    Returns how many WebSockets were still open for the 1001.
    """
    from feeds.deliver.hub import get_hub

    grace = settings.FEED_RECONNECT_GRACE_S if grace_s is None else grace_s
    if grace > 0 and _websockets:
        connections = (await get_hub()).connections
        announced = _announce_reconnect(connections, grace)
        with _interrupted_by_signals(enabled=interruptible) as interrupted:
            await _wait_gone(announced, connections, grace, interrupted)
    return await close_websockets()


def _announce_reconnect(connections: dict[Any, None], within_s: float) -> list[Reconnectable]:
    """Announce to every open connection of this process; the connections told."""
    told = [conn for conn in list(connections) if isinstance(conn, Reconnectable)]
    for conn in told:
        conn.announce_reconnect(within_s, ReconnectReason.SHUTDOWN)
    logger.info("shutdown: %d clients asked to reconnect within %g s", len(told), within_s)
    return told


async def _wait_gone(
    told: list[Reconnectable], connections: dict[Any, None], within_s: float, interrupted: asyncio.Event
) -> None:
    """Until none of ``told`` is among the hub's ``connections``, the grace is over, or a signal."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and not interrupted.is_set():
        if not any(conn in connections for conn in told):
            return
        await asyncio.sleep(SHUTDOWN_POLL_S)
    logger.info("shutdown: %s; closing who is left", "interrupted" if interrupted.is_set() else "grace over")


@contextlib.contextmanager
def _interrupted_by_signals(*, enabled: bool) -> Iterator[asyncio.Event]:
    """An event set by SIGTERM/SIGINT while inside (when ``enabled``); the old handlers come back after."""
    interrupted = asyncio.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield interrupted
        return
    loop = asyncio.get_running_loop()

    def handler(signum: int, frame: object) -> None:
        loop.call_soon_threadsafe(interrupted.set)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield interrupted
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _still_open(send: AsgiSend) -> bool:
    """Whether the daphne connection behind ``send`` still has a socket (False elsewhere)."""
    protocol = getattr(send, "args", (None,))[0]
    transport = getattr(protocol, "transport", None)
    return bool(transport is not None and getattr(transport, "connected", False))


async def process_stats() -> dict[str, Any]:
    """What this process holds, for the staff view of /healthz: counts only, no names."""
    from feeds.deliver.hub import get_hub

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
