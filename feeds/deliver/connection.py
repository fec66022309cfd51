"""``Connection``: one ``Session`` on the event loop, with the reads and timers it needs.

The session decides; this does what it cannot: it reads the instrument table,
the user's entitlements and, for a client that follows them (``follow.py``),
the user's watchlists (through ``database_sync_to_async``, at connect,
subscribe and control time only), asks the hub to route symbols, reads the
quote store, runs the timers (maximum age, the close after a ``reconnect``),
and carries out the session's ``Close`` through its ``Link``: whatever
framing the shell speaks (a WebSocket, an SSE response).

Subscription changes (subscribe, unsubscribe, a wildcard taking in new
instruments, a licence taken away, a re-snapshot) run one at a time, under
one lock, so the session sees them in a clear order. Work that a layer event
starts runs beside the client's frames as a task of this connection; its
failure is logged, never the connection's end.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Coroutine
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from feeds import auth, entitlements, watchlists
from feeds.core import protocol
from feeds.core.outbox import Outbox
from feeds.core.protocol import CloseCode, ReconnectReason
from feeds.deliver.coalesce import Coalesced
from feeds.deliver.follow import ReadWatchlists, WatchlistFollow
from feeds.deliver.hub import Hub
from feeds.deliver.plan import Action, AddToWildcard, Close, Limits, Opening, RecheckEntitlements
from feeds.deliver.session import Phase, Session
from feeds.publish.store import QuoteStore
from feeds.services import instruments_active_by_symbol, instruments_all_by_symbol

logger = logging.getLogger(__name__)

# A re-snapshot after a new epoch retries its store read this often, backing off.
RESNAPSHOT_ATTEMPTS = 5
RESNAPSHOT_BACKOFF_S = 0.2


def session_limits() -> Limits:
    """The session limits of this process's settings."""
    return Limits(
        max_symbols=settings.FEED_MAX_SYMBOLS,
        heartbeat_s=settings.FEED_HEARTBEAT_S,
        max_connection_age_s=settings.FEED_MAX_CONNECTION_AGE_S,
        reconnect_grace_s=settings.FEED_RECONNECT_GRACE_S,
    )


class Link(Protocol):
    """What a shell gives its connection: its kind, a way past the queue, and its end."""

    kind: str  # "websocket", "sse": feeds.edges.metrics counts connections by kind

    async def send_now(self, text: str) -> None:
        """Write one message to the client now, ahead of anything queued."""
        ...

    async def close(self, code: CloseCode) -> None:
        """End the stream (a WebSocket close frame with ``code``; the end of an SSE response)."""
        ...


# Subscribes that arrive together read the instrument table in one query (a reconnect storm).
_instruments_by_symbol: Coalesced[bool] = Coalesced(
    database_sync_to_async(instruments_active_by_symbol)
)


async def lookup_instruments(symbols: list[str] | tuple[str, ...]) -> dict[str, bool]:
    """``{symbol: active}`` of the known ones; text that cannot be a symbol never reaches SQL."""
    return await _instruments_by_symbol(s for s in symbols if protocol.is_symbol(s))


all_instruments = database_sync_to_async(instruments_all_by_symbol)
read_watchlists = database_sync_to_async(watchlists.lists_of)


async def covered_by_wildcard(user: Any, among: list[str] | None = None) -> dict[str, bool]:
    """``{symbol: active}`` of what ``*`` covers for ``user`` (only those ``among``, if given)."""
    visible = await entitlements.visible_symbols(user)
    if among is not None:
        return await lookup_instruments([s for s in among if visible is None or s in visible])
    if visible is None:
        return await all_instruments()
    return await lookup_instruments(sorted(visible))


class Connection:
    def __init__(
        self,
        session: Session,
        link: Link,
        *,
        hub: Hub,
        store: QuoteStore,
        user: Any,
        token: str | None,
        conn_id: str,
    ) -> None:
        self.session, self.link, self.hub, self.store = session, link, hub, store
        self.outbox: Outbox = session.outbox  # the hub's sweep and feeds.edges.metrics read it
        self.kind = link.kind
        self.user = user
        self.user_key = str(user.pk)
        # The token it authenticated with (None: a session or a ticket), for the re-check.
        self.token = token
        self.conn_id = conn_id
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}  # "max_age", "close"
        self._acquired = False
        self.follow = WatchlistFollow()  # the user's watchlists, if the client asked
        self._watchlists_lock = asyncio.Lock()

    @property
    def subs(self) -> dict[str, int | None]:
        return self.session.subs

    # --- lifecycle ------------------------------------------------------------------------

    async def acquire(self, limit: int) -> bool:
        """Count this connection against its user's limit; False when over it."""
        self._acquired = await self.store.connection_acquire(self.user_key, self.conn_id, limit)
        return self._acquired

    async def admit(self, request_id: protocol.RequestId = None) -> None:
        """Welcome the client, route the process's control events here, arm the maximum age."""
        self.session.admit(
            user=self.user.get_username(),
            user_key=self.user_key,
            token_digest=auth.token_digest(self.token) if self.token is not None else None,
            epoch=await self.store.epoch(),
            request_id=request_id,
        )
        self.hub.register(self)
        delay = self.session.max_age_delay(random.random())
        if delay is not None:
            self._timers["max_age"] = asyncio.get_running_loop().call_later(
                delay,
                self.announce_reconnect,
                self.session.limits.reconnect_grace_s,
                ReconnectReason.MAX_AGE,
            )

    async def end(self) -> None:
        """The client is gone: stop routing, forget the connection; idempotent."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # before leaving: no late join
        await self.hub.unregister(self, list(self.session.subs))
        self.session.close()
        if self._acquired:
            self._acquired = False
            await self.store.connection_release(self.user_key, self.conn_id)

    # --- requests -----------------------------------------------------------------------

    async def subscribe(self, request: protocol.Subscribe) -> None:
        async with self._lock:
            active = await lookup_instruments(request.symbols)
            visible = await entitlements.visible_symbols(self.user)
            covered = await covered_by_wildcard(self.user) if request.wildcard else None
            opening = self.session.plan_subscribe(
                request, active=active, visible=visible, covered=covered
            )
            await self._open(opening)

    async def open(self, opening: Opening) -> None:
        """Open symbols already checked (an SSE stream's, at its start)."""
        async with self._lock:
            await self._open(opening)

    async def unsubscribe(self, request: protocol.Unsubscribe) -> None:
        async with self._lock:
            unsure = self.session.unknown_symbols_in(request)
            known = await lookup_instruments(unsure) if unsure else {}
            leaving = self.session.unsubscribe(request, known=known)
            await self.hub.leave(self.session, leaving)

    async def watchlists(self, request: protocol.Watchlists) -> None:
        """Answer with the user's lists now; follow their changes unless told not to."""
        await self._send_watchlists(self.follow.request(request))

    async def _open(self, opening: Opening) -> None:
        session = self.session
        session.begin(opening)
        await self.hub.join(session, opening.new)
        latest, epoch = await self.store.snapshot(opening.symbols)
        resume = opening.resume
        reachable = resume.reachable(opening.symbols, latest, epoch) if resume is not None else {}
        found = await self.store.replay(reachable) if reachable else {}
        session.finish(opening, latest=latest, epoch=epoch, found=found)

    # --- from the hub -------------------------------------------------------------------

    def on_server_event(self, event: dict[str, Any]) -> None:
        """A control event for every connection of the process (revocations, listings, licences)."""
        self.act(self.session.on_event(event))
        if self.session.phase is Phase.OPEN:
            self.act(self.follow.on_event(event, self.user_key))

    def on_epoch(self, epoch: str) -> None:
        """Numbering restarted: a fresh snapshot of each symbol before any new-epoch quote."""
        if self.session.phase is Phase.OPEN and self.session.subs:
            self._spawn(self._resnapshot(epoch))

    def act(self, action: Action | ReadWatchlists | None) -> None:
        """Carry out what the session asked for."""
        if isinstance(action, Close):
            self._spawn(self._close(action))
        elif isinstance(action, AddToWildcard):
            self._spawn(self._wildcard_add(list(action.symbols)))
        elif isinstance(action, RecheckEntitlements):
            self._spawn(entitlements.enforce([self]))
        elif isinstance(action, ReadWatchlists):
            self._spawn(self._send_watchlists(action))

    def revoke(self) -> None:
        """Its credentials no longer hold (the periodic re-check): ``unauthorized``, 4401."""
        if self.session.phase is Phase.OPEN:
            logger.info("%s %s: credentials of %s revoked", self.kind, self.conn_id, self.user)
        self.act(self.session.revoke())

    async def drop_revoked(self, symbols: list[str]) -> None:
        """Its user may no longer see ``symbols``: ``status`` ``revoked`` each.

        Called by entitlements.enforce.
        """
        async with self._lock:
            leaving = self.session.drop_revoked(symbols)
            if leaving:
                logger.info(
                    "%s %s: entitlement revoked for %s", self.kind, self.conn_id, ", ".join(leaving)
                )
                await self.hub.leave(self.session, leaving)

    def announce_reconnect(self, within_s: float, reason: ReconnectReason) -> None:
        """Ask the client to move to a new connection; close this one with 1001 ``within_s`` later.

        The message goes straight to the client, past whatever a slow client has
        queued or conflated: it must arrive while there is time to act on it.
        A client that leaves first cancels the close (``end``).
        """
        text = self.session.announce_reconnect(within_s, reason)
        if text is None:
            return
        logger.info("%s %s: reconnect within %g s (%s)", self.kind, self.conn_id, within_s, reason)
        self._spawn(self.link.send_now(text))
        self._timers["close"] = asyncio.get_running_loop().call_later(within_s, self.going_away)

    def going_away(self) -> None:
        """Close now with 1001 (the end of a ``reconnect`` grace, or of the server)."""
        self.act(self.session.going_away())

    # --- background work ----------------------------------------------------------------

    async def _close(self, action: Close) -> None:
        if action.farewell is not None:
            await self.link.send_now(action.farewell)
        await self.link.close(action.code)

    async def _send_watchlists(self, action: ReadWatchlists) -> None:
        """Read the user's lists and queue them, one read at a time: the newest goes out last."""
        async with self._watchlists_lock:
            self.follow.reading(action)
            lists = await read_watchlists(self.user.pk)
            text = self.follow.answer(action, lists)
            if text is not None and self.session.phase is Phase.OPEN:
                self.session.outbox.control(text)

    async def _wildcard_add(self, symbols: list[str]) -> None:
        async with self._lock:
            covered = await covered_by_wildcard(
                self.user, [s for s in symbols if s not in self.session.subs]
            )
            opening = self.session.plan_wildcard_add(covered)
            if opening is not None:
                await self._open(opening)

    async def _resnapshot(self, epoch: str) -> None:
        async with self._lock:
            symbols = self.session.begin_resnapshot()
            for attempt in range(RESNAPSHOT_ATTEMPTS):
                try:
                    latest = await self.store.latest(symbols)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning("%s %s: snapshot read failed (%s)", self.kind, self.conn_id, exc)
                    await asyncio.sleep(RESNAPSHOT_BACKOFF_S * 2**attempt)
                    continue
                self.session.finish_resnapshot(symbols, latest=latest, epoch=epoch)
                return
            self.session.resnapshot_failed(symbols)

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        """Run ``job`` beside the client's frames.

        Its failure is logged, never the connection's end.
        """
        task = asyncio.create_task(self._logged(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _logged(self, job: Coroutine[Any, Any, None]) -> None:
        try:
            await job
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. the database is away: the client re-subscribes to catch up
            logger.warning("%s %s: background job failed (%s)", self.kind, self.conn_id, exc)
