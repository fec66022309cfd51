"""What a server process does before it exits: make-before-break, then 1001, then its ticker.

Every connection (WebSocket or SSE) is told to ``reconnect`` and given
``FEED_RECONNECT_GRACE_S`` to move (PROTOCOL.md, "Make-before-break"); the
wait ends as soon as every one has gone. Then every WebSocket still open,
admitted or not, is closed with 1001 "going away", and the embedded ticker
stops, writing its last bars (a plain exit would lose up to
``FEED_BARS_FLUSH_S`` of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings

from feeds.core.protocol import CloseCode, ReconnectReason
from feeds.deliver import server
from feeds.deliver.process import FeedProcess, feed_process

logger = logging.getLogger(__name__)

# How long a shutdown waits for clients to answer the 1001 close before the
# server drops what is left (a dead peer never answers).
SHUTDOWN_GRACE_S = 2.0
SHUTDOWN_POLL_S = 0.05
# Set once this process has begun to shut down (feeds.deliver.shutdown.begin).
_begun = False


def begin() -> None:
    """The process is going down: connections cancelled from now on live out their grace."""
    global _begun
    _begun = True


def begun() -> bool:
    return _begun


def longest_s() -> float:
    """The longest a connection may take to go once the shutdown began: grace, then its close."""
    return settings.FEED_RECONNECT_GRACE_S + 2 * SHUTDOWN_GRACE_S


async def shutdown(*, interruptible: bool = False) -> None:
    """Clients first, then the embedded ticker."""
    begin()
    owner = await feed_process()
    await shutdown_connections(owner, interruptible=interruptible)
    ticker = owner.ticker
    if ticker is not None:
        await ticker.stop()


async def shutdown_connections(
    owner: FeedProcess, *, grace_s: float | None = None, interruptible: bool = False
) -> int:
    """``reconnect`` to every connection, the grace, then 1001 to every WebSocket left.

    ``grace_s`` defaults to ``FEED_RECONNECT_GRACE_S`` (0 closes at once).
    ``interruptible``: a second SIGTERM or SIGINT during the wait cuts it short
    (under daphne, where the first one started the shutdown), so an impatient
    operator never waits twice. Returns how many WebSockets were still open.
    """
    grace = settings.FEED_RECONNECT_GRACE_S if grace_s is None else grace_s
    connections = owner.hub.connections
    with _interrupted_by_signals(enabled=interruptible) as interrupted:
        if grace > 0 and connections:
            told = list(connections)
            for conn in told:
                conn.announce_reconnect(grace, ReconnectReason.SHUTDOWN)
            logger.info("shutdown: %d clients asked to reconnect within %g s", len(told), grace)
            await _wait_gone(told, connections, grace, interrupted)
        # Whoever is left goes now, all at once: every connection is closed by its
        # own session (an SSE response ends), every WebSocket, admitted or not, gets
        # its 1001 (a second close of the same socket is a no-op), before the
        # reactor drops the sockets.
        left = list(connections)
        for conn in left:
            conn.going_away()
        closed = await close_websockets(owner)
        await _wait_gone(left, connections, SHUTDOWN_GRACE_S, interrupted)
    return closed


async def close_websockets(
    owner: FeedProcess, code: int = CloseCode.GOING_AWAY, *, grace_s: float = SHUTDOWN_GRACE_S
) -> int:
    """Close every open WebSocket with ``code``; wait up to ``grace_s`` for the closes to finish.

    Under daphne each close goes out as a close frame (autobahn itself refuses
    1001: feeds.deliver.server), and the wait lasts until every socket is
    closed, so the frames are on the wire before the reactor drops them.
    """
    sends = list(owner.websockets.values())
    transports = [
        server.attach(send, buffer_bytes=settings.FEED_WRITE_BUFFER_BYTES) for send in sends
    ]
    results = await asyncio.gather(
        *(t.close(int(code)) for t in transports), return_exceptions=True
    )
    failed = sum(1 for r in results if isinstance(r, BaseException))
    logger.info(
        "shutdown: closing %d WebSockets with %d (%d failed)", len(sends), int(code), failed
    )
    deadline = time.monotonic() + grace_s
    # Twisted owns the sockets and tells asyncio nothing when one goes: polled, within the grace.
    while any(server.still_open(send) for send in sends) and time.monotonic() < deadline:  # noqa: ASYNC110 (Twisted's state, no event)
        await asyncio.sleep(SHUTDOWN_POLL_S)
    return len(sends)


async def _wait_gone(
    told: list[Any], connections: dict[Any, None], within_s: float, interrupted: asyncio.Event
) -> None:
    """Wait until none of ``told`` is among the hub's ``connections``, or ``within_s`` is over.

    A signal (``interrupted``) ends the wait too.
    """
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and not interrupted.is_set():
        if not any(conn in connections for conn in told):
            return
        await asyncio.sleep(SHUTDOWN_POLL_S)
    reason = "interrupted" if interrupted.is_set() else "grace over"
    logger.info("shutdown: %s; closing who is left", reason)


@contextlib.contextmanager
def _interrupted_by_signals(*, enabled: bool) -> Iterator[asyncio.Event]:
    """An event set by SIGTERM/SIGINT while inside (when ``enabled``); old handlers come back."""
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
