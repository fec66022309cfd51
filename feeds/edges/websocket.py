"""``QuoteConsumer``: the WebSocket shell of a quote stream.

It authenticates (the handshake's user, or a first ``auth`` message within
``FEED_AUTH_TIMEOUT_S``), frames (JSON text or MessagePack binary, with the
frame size limit), and does the I/O; every rule of the stream is the
``Session``'s (feeds/deliver/session.py), driven by a ``Connection``.

Quotes never pass through here: the process's hub hands the ticker's
pre-encoded text to the session, whose outbox the hub flushes straight to the
socket through the server adapter. Channels' ``dispatch`` is not used: it
runs a thread hop per message to close old database connections
(docs/STACK.md), which ``database_sync_to_async`` already does where it
matters.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

from channels.consumer import AsyncConsumer
from django.conf import settings
from django.db import DatabaseError

from feeds.auth import peer, user_for_token
from feeds.core import parsing, protocol, wire_formats
from feeds.core.limits import TokenBucket
from feeds.core.outbox import Outbox
from feeds.core.protocol import CloseCode, ErrorCode, ProtocolError
from feeds.deliver.connection import Connection, session_limits
from feeds.deliver.counters import count_error
from feeds.deliver.process import FeedProcess, feed_process
from feeds.deliver.server import SERVER_SEND, Transport, attach
from feeds.deliver.session import Phase, Session

logger = logging.getLogger(__name__)


class QuoteConsumer(AsyncConsumer):  # type: ignore[misc]
    kind = "websocket"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self.base_send = send
        self.conn_id = secrets.token_hex(4)
        self.conn: Connection | None = None
        self.session: Session | None = None
        self.owner: FeedProcess | None = None
        self._auth_timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
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
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    if self.session is not None and self.session.phase is not Phase.CLOSED:
                        await self.on_frame(message)
                elif kind == "websocket.connect":
                    await self.on_connect()
                elif kind == "websocket.disconnect":
                    break
        finally:
            await self.on_disconnect()

    # --- the Link a Connection drives ---------------------------------------------------------

    async def send_now(self, text: str) -> None:
        await self._send_text(text)

    async def close(self, code: CloseCode) -> None:
        await self.transport.close(int(code))

    async def _send_text(self, text: str, shared: bool = False) -> None:
        if not self.transport.write_frames([text], shared):
            await self.base_send(self.wire.asgi_send(text))

    # --- lifecycle --------------------------------------------------------------------------

    async def on_connect(self) -> None:
        self.owner = owner = await feed_process()
        loop = asyncio.get_running_loop()
        outbox = Outbox(
            send=self._send_text,
            write=self.transport.write_frames,
            on_ready=owner.hub.schedule,
            batch_frames=settings.FEED_BATCH_FRAMES,
        )
        self.session = Session(
            outbox=outbox,
            limits=session_limits,
            clock=loop.time,
            call_at=loop.call_at,
            bucket=TokenBucket(
                rate=settings.FEED_RATE_PER_S, burst=settings.FEED_RATE_BURST, now=time.monotonic()
            ),
            on_error=count_error,
        )
        await self.base_send({"type": "websocket.accept"})
        self.transport.watch(pause=outbox.pause, resume=outbox.resume)
        if self._wire_error is not None:
            await self._refuse(ErrorCode.BAD_REQUEST, self._wire_error, CloseCode.UNSUPPORTED_DATA)
            return
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            await self._admit(user, request_id=None, token=self.scope.get("auth_token"))
        else:
            self._auth_timer = loop.call_later(settings.FEED_AUTH_TIMEOUT_S, self._auth_deadline)

    async def on_disconnect(self) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        if self.conn is not None:
            await self.conn.end()
        elif self.session is not None:
            self.session.close()

    async def _admit(self, user: Any, *, request_id: protocol.RequestId, token: str | None) -> None:
        """Count the connection against its user's limit, then welcome it."""
        assert self.owner is not None
        assert self.session is not None
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        conn = Connection(
            self.session, self, hub=self.owner.hub, store=self.owner.store, user=user,
            token=token, conn_id=self.conn_id,
        )
        limit = settings.FEED_MAX_CONNECTIONS_PER_USER
        if not await conn.acquire(limit):
            logger.info(
                "conn %s: %s is over %d connections", self.conn_id, user.get_username(), limit
            )
            await self._refuse(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"at most {limit} connections per user",
                CloseCode.TOO_MANY_CONNECTIONS,
                request_id=request_id,
            )
            return
        self.conn = conn
        await conn.admit(request_id)
        self.owner.watch(conn)
        logger.info(
            "conn %s: %s authenticated by %s from %s",
            self.conn_id,
            user.get_username(),
            self.scope.get("auth_method") or "auth message",
            peer(self.scope),
        )

    def _auth_deadline(self) -> None:
        if self.session is not None and self.session.phase is Phase.NEW:
            self._closing = asyncio.create_task(
                self._refuse(
                    ErrorCode.UNAUTHORIZED,
                    f"no auth within {settings.FEED_AUTH_TIMEOUT_S:g} s",
                    CloseCode.UNAUTHORIZED,
                )
            )

    async def _refuse(
        self,
        code: ErrorCode,
        message: str,
        close_code: CloseCode,
        *,
        request_id: protocol.RequestId = None,
    ) -> None:
        """The error, straight to the socket ahead of anything queued, then the close."""
        assert self.session is not None
        if self.session.phase is Phase.CLOSED:
            return
        await self.send_now(self.session.refuse(code, message, request_id))
        await self.transport.close(int(close_code))

    # --- client frames --------------------------------------------------------------------

    async def on_frame(self, message: dict[str, Any]) -> None:
        session = self.session
        assert session is not None
        text = message.get("text")
        raw = text if text is not None else message.get("bytes") or b""
        limit = settings.FEED_MAX_FRAME_BYTES
        if _frame_size(raw, limit) > limit:
            logger.info("conn %s: frame over %d bytes", self.conn_id, limit)
            await self._refuse(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"frames are limited to {limit} bytes",
                CloseCode.MESSAGE_TOO_BIG,
            )
            return
        try:
            if not session.allow_request(time.monotonic()):
                raise ProtocolError(
                    ErrorCode.RATE_LIMITED,
                    f"more than {settings.FEED_RATE_PER_S:g} requests a second",
                )
            request = wire_formats.parse_frame(self.wire, text, message.get("bytes"))
            if self.conn is None:
                await self._authenticate(request)
            else:
                await self._handle(self.conn, request)
        except ProtocolError as exc:
            if exc.request_id is None and text is not None:
                exc.request_id = parsing.readable_id(text)
            if self.conn is None and exc.code is not ErrorCode.RATE_LIMITED:
                await self._refuse(
                    ErrorCode.UNAUTHORIZED,
                    f"authenticate first ({exc.message})",
                    CloseCode.UNAUTHORIZED,
                    request_id=exc.request_id,
                )
            else:
                logger.info("conn %s: %s: %s", self.conn_id, exc.code, exc.message)
                session.reply_error(exc)
        except DatabaseError as exc:
            # The request needs the database and it is away. The protocol has no
            # error for that; 1001 tells the client to reconnect with jitter, and
            # by then the database may be back. The other connections stream on.
            logger.warning(
                "conn %s: database unavailable for a request (%s); closing 1001",
                self.conn_id,
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            )
            session.phase = Phase.CLOSED
            await self.transport.close(int(CloseCode.GOING_AWAY))

    async def _authenticate(self, request: protocol.Request) -> None:
        if not isinstance(request, protocol.Auth):
            raise ProtocolError(
                ErrorCode.UNAUTHORIZED, "the first message must be auth", request_id=request.id
            )
        user = await user_for_token(request.token)
        if user is None:
            logger.info(
                "conn %s: bad token in auth message from %s", self.conn_id, peer(self.scope)
            )
            await self._refuse(
                ErrorCode.UNAUTHORIZED,
                "invalid token",
                CloseCode.UNAUTHORIZED,
                request_id=request.id,
            )
            return
        await self._admit(user, request_id=request.id, token=request.token)

    async def _handle(self, conn: Connection, request: protocol.Request) -> None:
        if isinstance(request, protocol.Subscribe):
            await conn.subscribe(request)
        elif isinstance(request, protocol.Unsubscribe):
            await conn.unsubscribe(request)
        elif isinstance(request, protocol.ListSubscriptions):
            conn.session.list_subscriptions(request)
        elif isinstance(request, protocol.Ping):
            conn.session.pong(request, time.time_ns() // 1000)
        elif isinstance(request, protocol.Watchlists):
            await conn.watchlists(request)
        else:
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, "already authenticated", request_id=request.id
            )


def _frame_size(raw: str | bytes, limit: int) -> int:
    """The frame's size in bytes, computed exactly only when it could exceed ``limit``."""
    if isinstance(raw, bytes):
        return len(raw)
    if len(raw) * 4 <= limit:
        return len(raw)
    return len(raw.encode("utf-8", "surrogatepass"))
