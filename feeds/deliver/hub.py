"""Per-process fan-out: one channel-layer member per server process.

The ticker publishes each quote once, to the group of its instrument. Rather
than adding every WebSocket connection to the groups (the layer would then
copy each quote once per subscriber), the process's ``Hub`` joins a group when
its first local connection subscribes to that symbol and leaves it when the
last one goes. Group membership still decides which process gets a quote; a
local registry decides which of its connections do. A quote thus costs one
layer message per process, and its pre-encoded text is handed to each
subscriber's outbox as it is.

The hub also owns the flush loop (one pass per event-loop turn that produced
work, so messages that arrive together leave together) and the heartbeat sweep.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

from channels.layers import get_channel_layer

from feeds import revocation
from feeds.core import events, protocol
from feeds.core.groups import SERVERS_CONTROL_GROUP, group_for_symbol
from feeds.core.outbox import Outbox
from feeds.deliver.counters import quote_arrived
from feeds.deliver.server import forget_frames
from feeds.publish.outage import STORE, outage

logger = logging.getLogger(__name__)

# channels-redis forgets group members after a day (group_expiry): rejoin well before.
GROUP_REFRESH_S = 3600.0
RECEIVE_BACKOFF_MAX_S = 5.0


class Member(Protocol):
    """What the hub routes quotes to (a ``Session``): the hot path."""

    def deliver_quote(self, symbol: str, seq: int, text: str) -> None: ...

    def deliver_status(self, symbol: str, text: str) -> None: ...


class Listener(Protocol):
    """A connection of the process (``Connection``): control events, heartbeats, counts."""

    outbox: Outbox
    session: Any  # its Member

    def on_server_event(self, event: dict[str, Any]) -> None: ...

    def on_epoch(self, epoch: str) -> None: ...


class Hub:
    def __init__(self, *, heartbeat_s: float) -> None:
        self.layer = get_channel_layer()
        self.heartbeat_s = heartbeat_s
        self.channel: str | None = None
        self.connections: dict[Listener, None] = {}
        self.members: dict[str, dict[Member, None]] = {}
        self._joined: set[str] = set()
        self._group_lock = asyncio.Lock()
        self._ready: list[Outbox] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._started: asyncio.Future[None] | None = None
        self.quotes_received = 0
        # What connections that have gone had counted (feeds.edges.metrics reads these).
        self.retired_conflated = 0
        self.retired_quotes_sent = 0
        self.epoch: str | None = None  # of the newest quote received

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Create the hub's channel and start its loops; safe to call many times."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            try:
                self.channel = await self.layer.new_channel("hub.")
                await self.layer.group_add(SERVERS_CONTROL_GROUP, self.channel)
            except BaseException as exc:
                self._started.set_exception(exc)
                self._started.exception()  # mark retrieved; callers re-raise below
                self._started = None
                raise
            self._tasks = [
                asyncio.create_task(self._receive_loop(), name="hub-receive"),
                asyncio.create_task(self._flush_loop(), name="hub-flush"),
                asyncio.create_task(self._sweep_loop(), name="hub-sweep"),
            ]
            self._started.set_result(None)
        await asyncio.shield(self._started)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # --- registry ------------------------------------------------------------------------

    def register(self, conn: Listener) -> None:
        self.connections[conn] = None

    async def unregister(self, conn: Listener, symbols: Iterable[str]) -> None:
        """``conn`` is gone: no more events, and its session's ``symbols`` are no longer routed."""
        if self.connections.pop(conn, False) is None:
            self.retired_conflated += conn.outbox.conflated
            self.retired_quotes_sent += conn.outbox.quotes_sent
        await self.leave(conn.session, symbols)

    async def join(self, member: Member, symbols: Iterable[str]) -> None:
        """Route quotes of ``symbols`` to ``member``.

        Returns once the process is in their groups.
        """
        need = []
        for symbol in symbols:
            self.members.setdefault(symbol, {})[member] = None
            if symbol not in self._joined:
                need.append(symbol)
        if need:
            await self._sync_groups(need)

    async def leave(self, member: Member, symbols: Iterable[str]) -> None:
        """Stop routing ``symbols`` to ``member`` at once; leave groups nobody here needs."""
        stale = []
        for symbol in symbols:
            members = self.members.get(symbol)
            if members is not None:
                members.pop(member, None)
                if not members:
                    del self.members[symbol]
                    stale.append(symbol)
        if stale:
            await self._sync_groups(stale)

    async def _sync_groups(self, symbols: list[str]) -> None:
        async with self._group_lock:
            join = [s for s in symbols if s in self.members and s not in self._joined]
            drop = [s for s in symbols if s not in self.members and s in self._joined]
            await asyncio.gather(
                *(self.layer.group_add(group_for_symbol(s), self.channel) for s in join),
                *(self.layer.group_discard(group_for_symbol(s), self.channel) for s in drop),
            )
            self._joined.update(join)
            self._joined.difference_update(drop)

    # --- the hot path ------------------------------------------------------------------------

    def schedule(self, outbox: Outbox) -> None:
        """Outbox callback: it has messages for the next flush."""
        self._ready.append(outbox)
        if len(self._ready) == 1:
            self._wake.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            ready, self._ready = self._ready, []
            for outbox in ready:
                try:
                    pending = outbox.flush()
                    if pending is not None:
                        await pending
                except asyncio.CancelledError:
                    raise
                except Exception:  # one broken connection must not stop the others
                    logger.exception("flush to one connection failed")
            forget_frames()

    async def _receive_loop(self) -> None:
        backoff = 0.1
        layer, channel = self.layer, self.channel
        layer_outage = outage(STORE)
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                layer_outage.failed("hub receive", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECEIVE_BACKOFF_MAX_S)
                continue
            backoff = 0.1
            if layer_outage.active:
                layer_outage.recovered("hub receive")
            try:
                self.dispatch(message)
            except Exception:
                logger.exception(
                    "hub: could not handle a layer message of type %r", message.get("type")
                )

    def dispatch(self, message: dict[str, Any]) -> None:
        """Route one layer message: a quote or status to its members, anything else to all."""
        kind = message.get("type")
        if kind == events.QUOTE:
            self.quotes_received += 1
            epoch = message.get("epoch")
            if epoch != self.epoch and epoch is not None:
                self._epoch_changed(epoch)
            symbol, text = message["symbol"], message["text"]
            quote_arrived(text)
            members = self.members.get(symbol)
            if members:
                seq = message["seq"]
                for conn in members:
                    conn.deliver_quote(symbol, seq, text)
        elif kind == events.STATUS:
            symbol = message["symbol"]
            for conn in list(self.members.get(symbol, ())):
                conn.deliver_status(symbol, message["text"])
        else:
            if kind == events.AUTH_REVOKED:  # before any handshake can find the token cached
                revocation.forget_revoked(message)
            for conn in list(self.connections):
                conn.on_server_event(message)

    def _epoch_changed(self, epoch: str) -> None:
        """The store lost its data and numbering restarted: every subscriber resyncs."""
        previous, self.epoch = self.epoch, epoch
        if previous is None:
            return
        # INFO: it follows an outage already reported (feeds.publish.outage), or a deliberate reset.
        logger.info("hub: epoch %s -> %s; sending fresh snapshots", previous, epoch)
        for conn in list(self.connections):
            conn.on_epoch(epoch)

    async def _sweep_loop(self) -> None:
        """Heartbeats for quiet connections, and periodic group re-joins."""
        interval = min(1.0, self.heartbeat_s / 4)
        next_refresh = time.monotonic() + GROUP_REFRESH_S
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            due = now - self.heartbeat_s
            text = None
            for conn in self.connections:
                outbox = conn.outbox
                if outbox.last_sent <= due and not outbox.scheduled:
                    text = text or protocol.heartbeat(time.time_ns() // 1000)
                    outbox.last_sent = now  # a held heartbeat counts; don't stack them
                    outbox.control(text)
            if now >= next_refresh:
                next_refresh = now + GROUP_REFRESH_S
                await self._refresh_groups()

    async def _refresh_groups(self) -> None:
        try:
            async with self._group_lock:
                await asyncio.gather(
                    *(
                        self.layer.group_add(group_for_symbol(s), self.channel)
                        for s in self._joined
                    ),
                    self.layer.group_add(SERVERS_CONTROL_GROUP, self.channel),
                )
        except Exception as exc:
            outage(STORE).failed("hub group refresh", exc)
