"""``FeedProcess``: what one server process runs on its event loop, owned in one place.

One per event loop (``feed_process()``): the hub (this process's member of
the channel layer and its connections), the quote store, the embedded ticker
in the default layout, the registry of open WebSockets (so that a shutdown can
close every one, authenticated or not) and the periodic re-check of open
connections' credentials and licences. ``feeds.edges.metrics`` and
``/healthz`` read their figures from it.

In the embedded default it also reads the control events other processes
of the machine relayed through the database (``feeds.relay``) into the hub.

The re-check is the safety net for a lost broadcast: ``auth.revoked`` and
``entitlements.changed`` close or trim connections within a moment; every
``FEED_AUTH_RECHECK_S`` this loop asks the database again, for WebSocket and
SSE connections alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import weakref
from collections.abc import Iterator
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from feeds import entitlements, relay, revocation
from feeds.core.groups import SERVERS_CONTROL_GROUP
from feeds.deliver import server, server_pace
from feeds.deliver.collector import Collector
from feeds.deliver.hub import Hub
from feeds.deliver.server import AsgiSend
from feeds.deliver.session import Phase
from feeds.publish.build import build_ticker, get_store
from feeds.publish.store import QuoteStore
from feeds.publish.ticker import Ticker

logger = logging.getLogger(__name__)

EMBEDDED_RETRY_MAX_S = 10.0


class FeedProcess:
    def __init__(self) -> None:
        self.hub = Hub(heartbeat_s=settings.FEED_HEARTBEAT_S)
        self.store: QuoteStore = get_store()
        # key -> the server's own ASGI ``send`` of one open WebSocket (feeds.deliver.server).
        self.websockets: dict[object, AsgiSend] = {}
        self._ticker: asyncio.Task[Ticker] | None = None
        self._recheck: asyncio.Task[None] | None = None
        self._relay: asyncio.Task[None] | None = None
        self.collector = Collector(
            open_connections=lambda: len(self.hub.connections),  # WebSocket and SSE
            pass_s=settings.FEED_GC_PASS_S,
            reclaim_s=settings.FEED_GC_RECLAIM_S,
        )
        # The garbage collector's pace, from the first request on (feeds/deliver/collector.py).
        self._collecting = (
            asyncio.get_running_loop().create_task(self.collector.run(), name="gc-pace")
            if settings.FEED_GC_PASS_S > 0
            else None
        )

    async def start(self) -> None:
        """Start the hub (idempotent)."""
        await self.hub.start()

    # --- the embedded ticker ----------------------------------------------------------------

    def ensure_ticker(self) -> None:
        """Start the in-process ticker, once, if settings ask for it (FEED_TICKER=embedded)."""
        if settings.FEED_TICKER == "embedded" and self._ticker is None:
            loop = asyncio.get_running_loop()
            self._ticker = loop.create_task(_start_embedded(), name="embedded-ticker")
            if not settings.REDIS_URL:  # every process has a layer of its own
                self._relay = loop.create_task(self._relay_loop(), name="event-relay")

    @property
    def ticker(self) -> Ticker | None:
        """The embedded ticker once it runs, else None."""
        task = self._ticker
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    # --- the open WebSockets ----------------------------------------------------------------

    @contextlib.contextmanager
    def websocket_open(self, send: AsgiSend) -> Iterator[None]:
        """Register one WebSocket (by the server's own ``send``) while its application runs."""
        key = object()
        self.websockets[key] = send
        try:
            yield
        finally:
            self.websockets.pop(key, None)
            self.collector.connection_closed()

    # --- control events from the machine's other processes (feeds.relay) ----------------

    async def _relay_loop(self) -> None:
        """Read what other processes relayed, every ``FEED_RELOAD_INTERVAL_S``, into the hub."""
        last: int | None = None
        while True:
            try:
                if last is None:
                    last = await database_sync_to_async(relay.newest_id)()
                else:
                    last, found = await database_sync_to_async(relay.read_after)(last)
                    for event in found:
                        self.hub.dispatch(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Not migrated yet, or the database away: the outage is logged elsewhere.
                logger.debug("event relay read failed (%s)", exc)
            await asyncio.sleep(settings.FEED_RELOAD_INTERVAL_S)

    # --- the re-check -------------------------------------------------------------------

    def watch(self, conn: Any) -> None:
        """A connection was admitted: make sure the re-check loop runs."""
        if self._recheck is None or self._recheck.done():
            self._recheck = asyncio.create_task(self._recheck_loop(), name="auth-recheck")

    async def _recheck_loop(self) -> None:
        """Every ``FEED_AUTH_RECHECK_S``, close connections whose token or user no longer holds.

        Two queries per interval (one more per 500 tokens or users); with
        FEED_ENTITLEMENTS on, also drops symbols whose licence went
        (``entitlements.enforce``: one query, plus one per distinct user).
        """
        while True:
            await asyncio.sleep(settings.FEED_AUTH_RECHECK_S)
            conns = [c for c in list(self.hub.connections) if c.session.phase is Phase.OPEN]
            if conns:
                await self._recheck_once(conns)

    async def _recheck_once(self, conns: list[Any]) -> None:
        tokens = sorted({c.token for c in conns if c.token is not None})
        users = sorted({c.user_key for c in conns})
        try:
            good_tokens, good_users = await revocation.still_authorized(tokens, users)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("auth re-check failed (%s); retrying next interval", exc)
            return
        for conn in conns:
            if conn.user_key not in good_users or (
                conn.token is not None and good_tokens.get(conn.token) != conn.user_key
            ):
                conn.revoke()
        try:
            await entitlements.enforce(conns)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("entitlement re-check failed (%s); retrying next interval", exc)

    # --- figures ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What this process holds, for the staff view of /healthz: counts only, no names."""
        hub = self.hub
        # A staff call may pause: count what is really still reachable, frozen or not.
        self.collector.reclaim()
        groups = getattr(hub.layer, "groups", None)  # the in-memory layers' group -> members
        return {
            "pid": os.getpid(),
            "rss_bytes": rss_bytes(),
            "websockets": len(self.websockets),
            "connections": len(hub.connections),
            "symbols": len(hub.members),
            "subscriptions": sum(len(members) for members in hub.members.values()),
            "layer_groups": (  # quote groups the hub is a member of (not its control group)
                sum(
                    1
                    for name, members in groups.items()
                    if hub.channel in members and name != SERVERS_CONTROL_GROUP
                )
                if isinstance(groups, dict)
                else None
            ),
            "outbox_pending_max": max((c.outbox.pending for c in hub.connections), default=0),
            # Per-connection state that is never freed shows here; RSS seldom shrinks.
            "python_objects": gc.get_freeze_count(),
            # daphne's table, reaped by its pass (feeds/deliver/server_pace.py): a request
            # in flight counts, this one included.
            "server_connections": server_pace.tracked_connections(),
        }


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
            delay = min(delay * 2, EMBEDDED_RETRY_MAX_S)
            continue
        return ticker


_processes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FeedProcess] = (
    weakref.WeakKeyDictionary()
)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop, or None outside one (a scrape from a plain thread)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def current(loop: asyncio.AbstractEventLoop | None = None) -> FeedProcess | None:
    """The process owner of ``loop`` (default: the running one), if one was made."""
    loop = loop or running_loop()
    return None if loop is None else _processes.get(loop)


def here() -> FeedProcess:
    """The running loop's process owner, made on first use (not started)."""
    loop = asyncio.get_running_loop()
    found = _processes.get(loop)
    if found is None:
        found = _processes[loop] = FeedProcess()
        server.check()  # once per process: names what the server adapter must do without
    return found


async def feed_process() -> FeedProcess:
    """The running loop's process owner, started."""
    owner = here()
    await owner.start()
    return owner


def freeze_startup_objects() -> None:
    """Move everything loaded at start-up out of the garbage collector's sight.

    Django, Twisted and the app are a few hundred thousand objects that live
    as long as the process; every full collection would walk them all again,
    a pause of tens of milliseconds in the middle of the stream.
    """
    gc.collect()
    gc.freeze()


def rss_bytes() -> int:
    """This process's resident set size (Linux /proc), 0 where that is unavailable."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
