"""``QuoteConsumer``: one WebSocket connection of the quote stream.

A small state machine (``ConnState``): a connection is accepted, becomes
``OPEN`` once it has a user (from the handshake, or its first ``auth``
message), and is ``CLOSED`` once it has been told to go. Client frames are
handled one at a time, in order; quotes never pass through here as messages:
the process's hub calls ``deliver_quote`` with the ticker's pre-encoded text,
which goes into this connection's conflating outbox.

The database is touched only at connect, ``auth`` and ``subscribe`` time,
through ``database_sync_to_async``. Channels' ``dispatch`` is not used: it
runs a thread hop per message to close old database connections (PITFALLS.md),
which ``database_sync_to_async`` already does where it matters.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import secrets
import time
import weakref
from collections import deque
from collections.abc import Coroutine
from typing import Any

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError

from feeds import auth, entitlements

from feeds.core import events, protocol, wire_formats
from feeds.auth import peer, user_for_token
from feeds.deliver.delivery import Delivery
from feeds.deliver.hub import Hub, get_hub
from feeds.core.limits import TokenBucket
from feeds.deliver.counters import count_error
from feeds.core.outbox import Outbox
from feeds.core.protocol import CloseCode, ErrorCode, ProtocolError, State
from feeds.services import (
    instruments_active_by_symbol,
    instruments_all_by_symbol,
)
from feeds.publish.store import QuoteStore, get_store
from feeds.core.throttle import Throttle
from feeds.deliver.server import SERVER_SEND, Transport, attach

logger = logging.getLogger(__name__)

# Quotes of one symbol kept while its snapshot or replay is read. A read is one
# store round trip, so more than this means the store is stalling: the oldest
# go, and the client sees the gap as a prev_seq.
HOLD_BACK_MAX = 256
# A max-age reconnect comes up to this fraction of FEED_MAX_CONNECTION_AGE_S late,
# at random: connections opened together (after a deploy) then leave spread out.
MAX_AGE_JITTER = 0.1


class ConnState(enum.Enum):
    AWAITING_AUTH = "awaiting_auth"
    OPEN = "open"
    CLOSED = "closed"


@database_sync_to_async
def lookup_instruments(symbols: list[str] | tuple[str, ...]) -> dict[str, bool]:
    """``{symbol: active}`` of the known ones; text that cannot be a symbol never reaches SQL."""
    return instruments_active_by_symbol(s for s in symbols if protocol.is_symbol(s))


all_instruments = database_sync_to_async(instruments_all_by_symbol)


class QuoteConsumer(Delivery, AsyncConsumer):  # type: ignore[misc]
    kind = "websocket"
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self.base_send = send
        self.conn_id = secrets.token_hex(4)
        self.state = ConnState.AWAITING_AUTH
        self.user: Any = None
        self.user_key: str | None = None
        # The token this connection authenticated with (None for a session), for revocation.
        self.token: str | None = None
        self.token_digest: str | None = None
        # symbol -> seq of the newest quote sent; None while its snapshot is on its way.
        self.subs: dict[str, int | None] = {}
        # Live quotes held back while a subscribe reads the store, per symbol.
        self._backlog: dict[str, deque[tuple[int, str]]] = {}
        # The throttle of a "*" subscription, for instruments it takes in later; None: no "*".
        self.wildcard_throttle_ms: int | None = None
        # Subscribes, unsubscribes and wildcard additions change ``subs`` one at a time.
        self._subs_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.hub: Hub | None = None
        self.store: QuoteStore = get_store()
        # ?format= (feeds/core/wire_formats.py); an unknown one is refused once accepted.
        self.wire, self._wire_error = wire_formats.choose(scope.get("query_string", b""))
        self.transport: Transport = attach(
            scope.get(SERVER_SEND, send),
            buffer_bytes=settings.FEED_WRITE_BUFFER_BYTES,
            socket_buffer_bytes=settings.FEED_SOCKET_BUFFER_BYTES,
            wire=self.wire,
            compression=settings.FEED_WS_COMPRESSION,
            # Past the frame limit, so an inflated request still gets message_too_large.
            max_message_bytes=2 * settings.FEED_MAX_FRAME_BYTES,
        )
        self.bucket = TokenBucket(
            rate=settings.FEED_RATE_PER_S, burst=settings.FEED_RATE_BURST, now=time.monotonic()
        )
        self._auth_timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
        self._resync: asyncio.Task[None] | None = None
        self._reconnect_timers: dict[str, asyncio.TimerHandle] = {}  # make-before-break: "max_age", "close"
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    if self.state is not ConnState.CLOSED:
                        await self.on_frame(message)
                elif kind == "websocket.connect":
                    await self.on_connect()
                elif kind == "websocket.disconnect":
                    break
        finally:
            await self.on_disconnect()

    # --- connection lifecycle -------------------------------------------------------------

    async def on_connect(self) -> None:
        self.hub = await get_hub()
        self.outbox = Outbox(
            send=self._send_text,
            write=self.transport.write_frames,
            on_ready=self.hub.schedule,
            batch_frames=settings.FEED_BATCH_FRAMES,
        )
        loop = asyncio.get_running_loop()
        self.throttle = Throttle(clock=loop.time, call_at=loop.call_at, release=self.outbox.quote)
        await self.base_send({"type": "websocket.accept"})
        self.transport.watch(pause=self.outbox.pause, resume=self.outbox.resume)
        if self._wire_error is not None:
            await self._close_with_error(
                ErrorCode.BAD_REQUEST, self._wire_error, CloseCode.UNSUPPORTED_DATA
            )
            return
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            await self._admit(user, request_id=None, token=self.scope.get("auth_token"))
        else:
            loop = asyncio.get_running_loop()
            self._auth_timer = loop.call_later(settings.FEED_AUTH_TIMEOUT_S, self._auth_deadline)

    async def on_disconnect(self) -> None:
        self.state = ConnState.CLOSED
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        for timer in self._reconnect_timers.values():
            timer.cancel()
        await _stop(*self._tasks)  # before unregistering: a wildcard addition must not rejoin
        if self.hub is not None:
            await self.hub.unregister(self, list(self.subs))
            self.throttle.close()
        self.subs.clear()
        self._backlog.clear()
        if self.user_key is not None:
            await self.store.connection_release(self.user_key, self.conn_id)
            self.user_key = None

    async def _admit(
        self, user: Any, *, request_id: protocol.RequestId, token: str | None = None
    ) -> None:
        """Count the connection against its user's limit, then welcome it."""
        user_key = str(user.pk)
        limit = settings.FEED_MAX_CONNECTIONS_PER_USER
        if not await self.store.connection_acquire(user_key, self.conn_id, limit):
            logger.info("conn %s: %s is over %d connections", self.conn_id, user.get_username(), limit)
            await self._close_with_error(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"at most {limit} connections per user",
                CloseCode.TOO_MANY_CONNECTIONS,
                request_id=request_id,
            )
            return
        self.user, self.user_key = user, user_key
        if token is not None:
            self.token, self.token_digest = token, auth.token_digest(token)
        self.state = ConnState.OPEN
        assert self.hub is not None
        self.hub.register(self)
        _start_recheck(self.hub)
        self._start_max_age()
        self.outbox.control(
            protocol.welcome(
                user=user.get_username(),
                heartbeat_s=settings.FEED_HEARTBEAT_S,
                max_symbols=settings.FEED_MAX_SYMBOLS,
                epoch=await self.store.epoch(),
                request_id=request_id,
            )
        )
        logger.info(
            "conn %s: %s authenticated by %s from %s",
            self.conn_id,
            user.get_username(),
            self.scope.get("auth_method") or "auth message",
            peer(self.scope),
        )

    def _auth_deadline(self) -> None:
        if self.state is ConnState.AWAITING_AUTH:
            self._closing = asyncio.create_task(
                self._close_with_error(
                    ErrorCode.UNAUTHORIZED,
                    f"no auth within {settings.FEED_AUTH_TIMEOUT_S:g} s",
                    CloseCode.UNAUTHORIZED,
                )
            )

    async def _close_with_error(
        self,
        code: ErrorCode,
        message: str,
        close_code: CloseCode,
        *,
        request_id: protocol.RequestId = None,
    ) -> None:
        if self.state is ConnState.CLOSED:
            return
        self.state = ConnState.CLOSED
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        # Straight to the socket, ahead of anything queued: the client must read why.
        count_error(code)
        await self._send_text(protocol.error(code, message, request_id=request_id))
        await self.transport.close(int(close_code))

    async def _send_text(self, text: str, shared: bool = False) -> None:
        if not self.transport.write_frames([text], shared):
            await self.base_send(self.wire.asgi_send(text))

    # --- client frames ------------------------------------------------------------------------

    async def on_frame(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        raw = text if text is not None else message.get("bytes") or b""
        limit = settings.FEED_MAX_FRAME_BYTES
        if _frame_size(raw, limit) > limit:
            logger.info("conn %s: frame over %d bytes", self.conn_id, limit)
            await self._close_with_error(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"frames are limited to {limit} bytes",
                CloseCode.MESSAGE_TOO_BIG,
            )
            return
        if not self.bucket.take(time.monotonic()):
            self._reply_error(
                ProtocolError(
                    ErrorCode.RATE_LIMITED,
                    f"more than {settings.FEED_RATE_PER_S:g} requests a second",
                    request_id=protocol.readable_id(text) if text is not None else None,
                )
            )
            return
        try:
            request = wire_formats.parse_frame(self.wire, text, message.get("bytes"))
            if self.state is ConnState.AWAITING_AUTH:
                await self._authenticate(request)
            else:
                await self.handle(request)
        except ProtocolError as exc:
            if exc.request_id is None and text is not None:
                exc.request_id = protocol.readable_id(text)
            if self.state is ConnState.AWAITING_AUTH:
                await self._close_with_error(
                    ErrorCode.UNAUTHORIZED,
                    f"authenticate first ({exc.message})",
                    CloseCode.UNAUTHORIZED,
                    request_id=exc.request_id,
                )
            else:
                self._reply_error(exc)
        except DatabaseError as exc:
            # The request needs the database and it is away. The protocol has no
            # error for that; 1001 tells the client to reconnect with jitter, and
            # by then the database may be back. The other connections stream on.
            logger.warning(
                "conn %s: database unavailable for a request (%s); closing 1001",
                self.conn_id,
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            )
            self.state = ConnState.CLOSED
            await self.transport.close(int(CloseCode.GOING_AWAY))

    def _reply_error(self, exc: ProtocolError) -> None:
        logger.info("conn %s: %s: %s", self.conn_id, exc.code, exc.message)
        count_error(exc.code)
        self.outbox.control(exc.to_text())

    async def _authenticate(self, request: protocol.Request) -> None:
        if not isinstance(request, protocol.Auth):
            raise ProtocolError(
                ErrorCode.UNAUTHORIZED, "the first message must be auth", request_id=request.id
            )
        user = await user_for_token(request.token)
        if user is None:
            logger.info("conn %s: bad token in auth message from %s", self.conn_id, peer(self.scope))
            await self._close_with_error(
                ErrorCode.UNAUTHORIZED, "invalid token", CloseCode.UNAUTHORIZED, request_id=request.id
            )
            return
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        await self._admit(user, request_id=request.id, token=request.token)

    async def handle(self, request: protocol.Request) -> None:
        if isinstance(request, protocol.Subscribe):
            async with self._subs_lock:
                await self.subscribe(request)
        elif isinstance(request, protocol.Unsubscribe):
            async with self._subs_lock:
                await self.unsubscribe(request)
        elif isinstance(request, protocol.ListSubscriptions):
            listed = list(self.subs)
            if self.wildcard_throttle_ms is not None:
                listed.append(protocol.WILDCARD)
            self.outbox.control(protocol.subscriptions(listed, request.id))
        elif isinstance(request, protocol.Ping):
            self.outbox.control(protocol.pong(time.time_ns() // 1000, request.id))
        else:
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, "already authenticated", request_id=request.id
            )

    async def subscribe(self, request: protocol.Subscribe) -> None:
        symbols = request.symbols
        active = await lookup_instruments(symbols)
        _refuse_unknown(symbols, active, request.id)
        await entitlements.check_subscribe(self.user, symbols, request.id)  # not_entitled
        if request.wildcard:
            covered = await self._covered()
            symbols += tuple(sorted(s for s in covered if s not in active))
            active = covered | active
            if request.since is not None:
                protocol.check_since(request.since, symbols, request.id)
        new = tuple(s for s in symbols if s not in self.subs)
        limit = settings.FEED_MAX_SYMBOLS
        if len(self.subs) + len(new) > limit:
            raise ProtocolError(
                ErrorCode.TOO_MANY_SYMBOLS,
                f"at most {limit} symbols per connection; {len(self.subs)} already subscribed",
                request_id=request.id,
                symbols=new,
            )
        if request.wildcard:
            self.wildcard_throttle_ms = request.throttle_ms
        await self._open(
            symbols, new, active, throttle_ms=request.throttle_ms, request_id=request.id,
            since=request.since, client_epoch=request.epoch,
        )

    async def _open(
        self,
        symbols: tuple[str, ...],
        new: tuple[str, ...],
        active: dict[str, bool],
        *,
        throttle_ms: int,
        request_id: protocol.RequestId,
        since: dict[str, int] | None = None,
        client_epoch: str | None = None,
    ) -> None:
        """Route ``symbols`` here (``new``: not yet), reply, then send each its starting point.

        The starting point is a snapshot, a ``status`` ``halted``, or for a
        resumed symbol the quotes it missed. Live quotes are held back meanwhile:
        the store is written before a quote is published, so what is read below
        and the quotes held back from the moment we join leave nothing out; the
        held ones not newer than what was sent are dropped.
        """
        for symbol in symbols:
            self.subs[symbol] = None
            self._backlog[symbol] = deque(maxlen=HOLD_BACK_MAX)
            self.outbox.forget(symbol)  # what is read below supersedes it
            self.throttle.drop(symbol)
        assert self.hub is not None
        await self.hub.join(self, new)
        latest = await self.store.latest(symbols)
        epoch = await self.store.epoch()
        replayed = await self._replay(since, client_epoch, epoch, latest)
        recovered = None if since is None else {s: replayed[s] is not None for s in since}
        self.outbox.control(protocol.subscribed(symbols, request_id, recovered))
        for symbol in symbols:
            backlog = self._backlog.pop(symbol, ())
            if symbol not in self.subs:  # gone while we awaited (disconnect)
                continue
            missed = replayed.get(symbol)
            if missed is not None and since is not None:
                self.subs[symbol] = since[symbol]
                self.throttle.set(symbol, throttle_ms, wait=False)
                for text in missed:
                    self.deliver_quote(symbol, protocol.quote_seq(text), text)
            else:
                seq, text = latest.get(symbol, (0, ""))
                if active[symbol] and text:
                    self.outbox.control(protocol.snapshot_from_quote(text, epoch))
                self.subs[symbol] = seq if active[symbol] and text else 0
                self.throttle.set(symbol, throttle_ms)
            if not active[symbol]:
                self.deliver_status(symbol, protocol.status(symbol, State.HALTED))
            for seq, text in backlog:
                self.deliver_quote(symbol, seq, text)

    async def _replay(
        self,
        since: dict[str, int] | None,
        client_epoch: str | None,
        epoch: str,
        latest: dict[str, tuple[int, str]],
    ) -> dict[str, list[str] | None]:
        """The quotes each symbol of ``since`` missed, in seq order; None where they cannot be had.

        None: another epoch, a ring that no longer reaches back, or a seq the
        store has not reached (the client's numbers are not this store's).
        """
        if not since:
            return {}
        if client_epoch != epoch:
            return dict.fromkeys(since)
        reachable = {s: n for s, n in since.items() if n <= latest.get(s, (0, ""))[0]}
        found = await self.store.replay(reachable) if reachable else {}
        return {s: found.get(s) for s in since}

    async def _covered(self, among: list[str] | None = None) -> dict[str, bool]:
        """``{symbol: active}`` of what ``"*"`` covers (only those ``among``, if given)."""
        visible = await entitlements.visible_symbols(self.user)
        if among is not None:
            return await lookup_instruments([s for s in among if visible is None or s in visible])
        if visible is None:
            return await all_instruments()
        return await lookup_instruments(sorted(visible))

    async def _wildcard_add(self, symbols: list[str]) -> None:
        """Take instruments listed after a ``"*"`` subscribe into it, as a subscribe of them would.

        The client gets an unsolicited ``subscribed`` naming them; those past
        ``max_symbols`` are left out and named in a ``too_many_symbols`` error.
        """
        async with self._subs_lock:
            if self.wildcard_throttle_ms is None or self.state is not ConnState.OPEN:
                return
            active = await self._covered([s for s in symbols if s not in self.subs])
            fresh = tuple(s for s in symbols if s in active)
            room = max(0, settings.FEED_MAX_SYMBOLS - len(self.subs))
            if len(fresh) > room:
                self._reply_error(
                    ProtocolError(
                        ErrorCode.TOO_MANY_SYMBOLS,
                        f"new instruments left out of '*': at most {room} more symbols",
                        symbols=fresh[room:],
                    )
                )
                fresh = fresh[:room]
            if fresh:
                await self._open(
                    fresh, fresh, active, throttle_ms=self.wildcard_throttle_ms, request_id=None
                )

    async def unsubscribe(self, request: protocol.Unsubscribe) -> None:
        symbols = request.symbols
        unsure = [s for s in symbols if s not in self.subs]
        if unsure:
            _refuse_unknown(unsure, await lookup_instruments(unsure), request.id)
        if request.wildcard:  # "*" ends the wildcard and takes everything with it
            self.wildcard_throttle_ms = None
            symbols += tuple(sorted(s for s in self.subs if s not in symbols))
        leaving = [s for s in symbols if s in self.subs]
        for symbol in leaving:
            del self.subs[symbol]
            self.outbox.forget(symbol)
            self.throttle.drop(symbol)
        # Routing stops synchronously inside leave(), before the reply is queued.
        assert self.hub is not None
        leave = self.hub.leave(self, leaving)
        self.outbox.control(protocol.unsubscribed(symbols, request.id))
        await leave

    # --- called by the hub (quotes and status: feeds/deliver/delivery.py) ---------------------------------

    def on_server_event(self, event: dict[str, Any]) -> None:
        """Messages for every connection of the process: revocations, new instruments, licences."""
        if event.get("type") == events.AUTH_REVOKED and self.state is ConnState.OPEN:
            if self.token_digest in event.get("tokens", ()) or self.user_key in event.get("users", ()):
                self.revoke()
        # New instruments join a "*" subscription.
        if event.get("type") == events.INSTRUMENTS_ADDED and self.wildcard_throttle_ms is not None:
            symbols = event.get("symbols")
            if isinstance(symbols, list):
                named = dict.fromkeys(s for s in symbols if isinstance(s, str))
                self._spawn(self._wildcard_add(list(named)))
        # A revoked licence drops its symbols (feeds/entitlements.py).
        if entitlements.concerns(event, self.user_key) and self.state is ConnState.OPEN:
            self._spawn(entitlements.enforce([self]))

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        """Run ``job`` beside the frame loop; its failure is logged, never the connection's end."""
        task = asyncio.create_task(_logged(job, self.conn_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- make-before-break (PROTOCOL.md "Make-before-break: reconnect") ---

    def announce_reconnect(self, within_s: float, reason: protocol.ReconnectReason) -> None:
        """Ask the client to move to a new connection; close this one with 1001 ``within_s`` later.

        The message goes straight to the socket, past whatever a slow client has
        queued or conflated: it must arrive while there is time to act on it.
        One announcement per connection (a shutdown during a max-age grace keeps
        the first deadline, never a later one); a client that leaves first
        cancels the close (``on_disconnect``).
        """
        if self.state is not ConnState.OPEN or "close" in self._reconnect_timers:
            return
        logger.info("conn %s: reconnect within %g s (%s)", self.conn_id, within_s, reason)
        self._spawn(self._send_text(protocol.reconnect(within_s, reason)))
        loop = asyncio.get_running_loop()
        self._reconnect_timers["close"] = loop.call_later(within_s, self._close_going_away)

    def _start_max_age(self) -> None:
        """Schedule the ``max_age`` announcement, jittered so a fleet's clients don't move at once."""
        age = settings.FEED_MAX_CONNECTION_AGE_S
        if age <= 0:
            return
        delay = age * (1 + random.uniform(0, MAX_AGE_JITTER))
        self._reconnect_timers["max_age"] = asyncio.get_running_loop().call_later(
            delay, self.announce_reconnect, settings.FEED_RECONNECT_GRACE_S,
            protocol.ReconnectReason.MAX_AGE,
        )

    def _close_going_away(self) -> None:
        if self.state is ConnState.OPEN:
            self.state = ConnState.CLOSED
            self._closing = asyncio.create_task(self.transport.close(int(CloseCode.GOING_AWAY)))


    def revoke(self) -> None:
        """Its credentials no longer hold: ``unauthorized``, then close 4401."""
        if self.state is not ConnState.OPEN or (self._closing is not None and not self._closing.done()):
            return
        logger.info("conn %s: credentials of %s revoked", self.conn_id, self.user.get_username())
        self._closing = asyncio.create_task(
            self._close_with_error(
                ErrorCode.UNAUTHORIZED, "credentials revoked", CloseCode.UNAUTHORIZED
            )
        )

    def on_epoch(self, epoch: str) -> None:
        """Numbering restarted: hold quotes back until a snapshot of the new epoch is out."""
        if self.state is not ConnState.OPEN or not self.subs:
            return
        for symbol in self.subs:
            self.subs[symbol] = None
        if self._resync is None or self._resync.done():
            self._resync = asyncio.create_task(self._resnapshot(epoch))

    async def _resnapshot(self, epoch: str) -> None:
        for attempt in range(5):
            pending = [s for s, seq in self.subs.items() if seq is None]
            try:
                latest = await self.store.latest(pending)
            except Exception as exc:
                logger.warning("conn %s: snapshot read failed (%s)", self.conn_id, exc)
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            for symbol in pending:
                if self.subs.get(symbol, -1) is None:
                    seq, text = latest.get(symbol, (0, ""))
                    if text:
                        self.outbox.forget(symbol)  # of the old epoch: the snapshot supersedes it
                        self.throttle.restart(symbol)
                        self.outbox.control(protocol.snapshot_from_quote(text, epoch))
                    self.subs[symbol] = seq
            return
        for symbol, seq in self.subs.items():  # no store: let quotes through without snapshots
            if seq is None:
                self.subs[symbol] = 0


async def _logged(job: Coroutine[Any, Any, None], conn_id: str) -> None:
    try:
        await job
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # e.g. the database is away: the client re-subscribes to catch up
        logger.warning("conn %s: background job failed (%s)", conn_id, exc)


async def _stop(*tasks: asyncio.Task[None]) -> None:
    """Cancel ``tasks`` and wait until they have unwound."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --- the safety net for lost revocation messages -------------------------------------------


_rechecks: weakref.WeakKeyDictionary[Hub, asyncio.Task[None]] = weakref.WeakKeyDictionary()


def _start_recheck(hub: Hub) -> None:
    """One re-check loop per hub (process and event loop), started with its first connection."""
    task = _rechecks.get(hub)
    if task is None or task.done():
        _rechecks[hub] = asyncio.create_task(_recheck_loop(hub), name="auth-recheck")


async def _recheck_loop(hub: Hub) -> None:
    """Every ``FEED_AUTH_RECHECK_S``, close connections whose token or user no longer holds.

    The ``auth.revoked`` broadcast closes them within a moment; this catches a
    broadcast lost to a layer outage, at the cost of two queries per process
    and interval (one more per 500 tokens or users). With FEED_ENTITLEMENTS
    on it also drops symbols whose entitlement went (``entitlements.enforce``:
    one query, plus one per distinct user with subscriptions).
    """
    while True:
        await asyncio.sleep(settings.FEED_AUTH_RECHECK_S)
        conns = [c for c in list(hub.connections) if isinstance(c, QuoteConsumer)]
        conns = [c for c in conns if c.state is ConnState.OPEN]
        if not conns:
            continue
        tokens = sorted({c.token for c in conns if c.token is not None})
        users = sorted({c.user_key for c in conns if c.user_key is not None})
        try:
            good_tokens, good_users = await auth.still_authorized(tokens, users)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("auth re-check failed (%s); retrying next interval", exc)
            continue
        for conn in conns:
            if conn.user_key not in good_users or (
                conn.token is not None and good_tokens.get(conn.token) != conn.user_key
            ):
                conn.revoke()
        # The net for a lost entitlements.changed broadcast.
        try:
            await entitlements.enforce(conns)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("entitlement re-check failed (%s); retrying next interval", exc)


def _refuse_unknown(
    symbols: tuple[str, ...] | list[str], known: dict[str, bool], request_id: protocol.RequestId
) -> None:
    """Raise ``unknown_symbol`` naming every symbol of the request that is not an instrument."""
    unknown = tuple(s for s in symbols if s not in known)
    if unknown:
        raise ProtocolError(
            ErrorCode.UNKNOWN_SYMBOL,
            "unknown symbol(s): " + ", ".join(unknown),
            request_id=request_id,
            symbols=unknown,
        )


def _frame_size(raw: str | bytes, limit: int) -> int:
    """The frame's size in bytes, computed exactly only when it could exceed ``limit``."""
    if isinstance(raw, bytes):
        return len(raw)
    if len(raw) * 4 <= limit:
        return len(raw)
    return len(raw.encode("utf-8", "surrogatepass"))
