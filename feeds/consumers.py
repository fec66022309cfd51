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
import secrets
import time
import weakref
from typing import Any

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError

from feeds import auth, protocol
from feeds.auth import peer, user_for_token
from feeds.hub import Hub, get_hub
from feeds.limits import TokenBucket
from feeds.outbox import Outbox
from feeds.protocol import CloseCode, ErrorCode, ProtocolError, State
from feeds.services import instruments_active_by_symbol
from feeds.store import QuoteStore, get_store
from feeds.transport import SERVER_SEND, Transport, attach

logger = logging.getLogger(__name__)


class ConnState(enum.Enum):
    AWAITING_AUTH = "awaiting_auth"
    OPEN = "open"
    CLOSED = "closed"


@database_sync_to_async
def lookup_instruments(symbols: list[str] | tuple[str, ...]) -> dict[str, bool]:
    """``{symbol: active}`` of the known ones; text that cannot be a symbol never reaches SQL."""
    return instruments_active_by_symbol(s for s in symbols if protocol.is_symbol(s))


class QuoteConsumer(AsyncConsumer):  # type: ignore[misc]
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
        self.hub: Hub | None = None
        self.store: QuoteStore = get_store()
        self.transport: Transport = attach(
            scope.get(SERVER_SEND, send),
            buffer_bytes=settings.FEED_WRITE_BUFFER_BYTES,
            socket_buffer_bytes=settings.FEED_SOCKET_BUFFER_BYTES,
        )
        self.bucket = TokenBucket(
            rate=settings.FEED_RATE_PER_S, burst=settings.FEED_RATE_BURST, now=time.monotonic()
        )
        self._auth_timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
        self._resync: asyncio.Task[None] | None = None
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
        await self.base_send({"type": "websocket.accept"})
        self.transport.watch(pause=self.outbox.pause, resume=self.outbox.resume)
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
        if self.hub is not None:
            await self.hub.unregister(self, list(self.subs))
        self.subs.clear()
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
        await self._send_text(protocol.error(code, message, request_id=request_id))
        await self.transport.close(int(close_code))

    async def _send_text(self, text: str, shared: bool = False) -> None:
        if not self.transport.write_frames([text], shared):
            await self.base_send({"type": "websocket.send", "text": text})

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
            if text is None:
                raise ProtocolError(ErrorCode.BAD_REQUEST, "binary frames are not part of the protocol")
            request = protocol.parse_client_frame(text)
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
            await self.subscribe(request)
        elif isinstance(request, protocol.Unsubscribe):
            await self.unsubscribe(request)
        elif isinstance(request, protocol.ListSubscriptions):
            self.outbox.control(protocol.subscriptions(list(self.subs), request.id))
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
        new = tuple(s for s in symbols if s not in self.subs)
        limit = settings.FEED_MAX_SYMBOLS
        if len(self.subs) + len(new) > limit:
            raise ProtocolError(
                ErrorCode.TOO_MANY_SYMBOLS,
                f"at most {limit} symbols per connection; {len(self.subs)} already subscribed",
                request_id=request.id,
                symbols=new,
            )
        # Hold back quotes of these symbols until their snapshot has gone out:
        # the store is written before a quote is published, so the snapshot
        # read below is at least as new as any quote held back.
        for symbol in symbols:
            self.subs[symbol] = None
        assert self.hub is not None
        await self.hub.join(self, new)
        self.outbox.control(protocol.subscribed(symbols, request.id))
        latest = await self.store.latest(symbols)
        epoch = await self.store.epoch()
        for symbol in symbols:
            if symbol not in self.subs:  # gone while we awaited (disconnect)
                continue
            seq, text = latest.get(symbol, (0, ""))
            if not active[symbol]:
                self.outbox.control(protocol.status(symbol, State.HALTED))
            elif text:
                self.outbox.control(protocol.snapshot_from_quote(text, epoch))
            self.subs[symbol] = seq

    async def unsubscribe(self, request: protocol.Unsubscribe) -> None:
        symbols = request.symbols
        unsure = [s for s in symbols if s not in self.subs]
        if unsure:
            _refuse_unknown(unsure, await lookup_instruments(unsure), request.id)
        leaving = [s for s in symbols if s in self.subs]
        for symbol in leaving:
            del self.subs[symbol]
            self.outbox.forget(symbol)
        # Routing stops synchronously inside leave(), before the reply is queued.
        assert self.hub is not None
        leave = self.hub.leave(self, leaving)
        self.outbox.control(protocol.unsubscribed(symbols, request.id))
        await leave

    # --- called by the hub ------------------------------------------------------------------------

    def deliver_quote(self, symbol: str, seq: int, text: str) -> None:
        last = self.subs.get(symbol, -1)
        if last is None or last == -1 or seq <= last:
            return  # snapshot pending, not subscribed, or not newer than what was sent
        self.subs[symbol] = seq
        self.outbox.quote(symbol, text)

    def deliver_status(self, symbol: str, text: str) -> None:
        if symbol in self.subs:
            self.outbox.control(text)

    def on_server_event(self, event: dict[str, Any]) -> None:
        """Messages for every connection of the process: token and user revocations."""
        if event.get("type") == auth.AUTH_REVOKED and self.state is ConnState.OPEN:
            if self.token_digest in event.get("tokens", ()) or self.user_key in event.get("users", ()):
                self.revoke()

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
                        self.outbox.control(protocol.snapshot_from_quote(text, epoch))
                    self.subs[symbol] = seq
            return
        for symbol, seq in self.subs.items():  # no store: let quotes through without snapshots
            if seq is None:
                self.subs[symbol] = 0


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
    and interval (one more per 500 tokens or users).
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
