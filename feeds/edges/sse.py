"""``GET /sse/quotes/?symbols=A,B``: the SSE shell of a quote stream.

For clients that only listen (a browser's ``EventSource``, ``curl -N``). It
checks everything that can refuse the request before the ``200``:
credentials (401), the browser's Origin (403), parameters (400), symbols
(400 unknown, 403 not entitled, 400 too many: the session's own subscribe
rule), the per-user connection limit (429); each refusal is a JSON
``{"detail": ...}``. Then it frames each message as one SSE event
(feeds/core/eventstream.py) and does the I/O; the stream itself is the same
``Session`` a WebSocket holds, driven by a ``Connection``: the same
snapshots and resume, throttle, wildcard, conflation for a slow reader,
revocation, re-check, re-snapshot on a new epoch, and ``reconnect`` before a
planned close (an SSE event, then the end of the response).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from feeds import entitlements
from feeds.auth import (
    _header,
    handshake_token,
    origin_allowed,
    peer,
    user_for_ticket,
    user_for_token,
)
from feeds.core.eventstream import Refusal, StreamParams, event, parse_params, refusal_of
from feeds.core.outbox import Outbox
from feeds.core.protocol import CloseCode, ErrorCode, ProtocolError
from feeds.deliver import server
from feeds.deliver.connection import (
    Connection,
    covered_by_wildcard,
    lookup_instruments,
    session_limits,
)
from feeds.deliver.counters import count_error
from feeds.deliver.plan import Opening
from feeds.deliver.process import FeedProcess, feed_process
from feeds.deliver.resume import parse_last_event_id
from feeds.deliver.session import Session
from feeds.edges.middleware import DETAIL as DATABASE_DOWN_DETAIL
from feeds.edges.middleware import RETRY_AFTER_S

logger = logging.getLogger(__name__)

PATH = "/sse/quotes/"
# The reconnect delay each stream suggests, drawn per stream so that the
# clients of a restarted server do not all come back in the same instant.
RETRY_MS_MIN, RETRY_MS_MAX = 1000, 3000

AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # nginx (deploy/nginx) must pass every event at once, not fill a buffer first.
    (b"x-accel-buffering", b"no"),
]
_CHALLENGE = ((b"www-authenticate", b"Token"),)
_RETRY_AFTER = ((b"retry-after", str(RETRY_AFTER_S).encode()),)


class Stream:
    """One SSE response: the ``Link`` its connection drives."""

    kind = "sse"

    def __init__(self, scope: dict[str, Any], send: AsgiSend) -> None:
        self.scope, self._send = scope, send
        self.conn_id = secrets.token_hex(4)
        self.http = server.attach_stream(
            scope.get(server.SERVER_SEND, send),
            buffer_bytes=settings.FEED_WRITE_BUFFER_BYTES,
            socket_buffer_bytes=settings.FEED_SOCKET_BUFFER_BYTES,
        )
        self.ended = asyncio.Event()
        self.started = self.finished = False

    async def send_now(self, text: str) -> None:
        await self._body(event(text).encode())

    async def close(self, code: CloseCode) -> None:
        self.ended.set()

    async def head(self) -> None:
        self.started = True
        await self._send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await self._body(f"retry: {random.randint(RETRY_MS_MIN, RETRY_MS_MAX)}\n\n".encode())

    async def _body(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def _send_event(self, text: str, shared: bool = False) -> None:
        await self._body(event(text).encode())

    def write(self, texts: list[str], shared: bool) -> bool:
        """The outbox's fast path: the whole flush in one write, where the server allows it."""
        return self.http.write("".join(map(event, texts)).encode())

    async def finish(self) -> None:
        """End the response (once, and only if it began)."""
        self.ended.set()
        if self.started and not self.finished:
            self.finished = True
            self.http.release()
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})


async def stream_quotes(scope: dict[str, Any], receive: Any, send: AsgiSend) -> None:
    """The ASGI app of ``GET /sse/quotes/`` (inside channels' AuthMiddlewareStack: the session)."""
    await receive()  # the request (a GET has no body)
    stream = Stream(scope, send)
    owner = await feed_process()
    try:
        conn, opening = await _admit(stream, owner, scope)
    except Refusal as refusal:
        await _refuse(send, scope, refusal)
        return
    try:
        await stream.head()
        stream.http.watch(pause=conn.outbox.pause, resume=conn.outbox.resume)
        await conn.admit()
        owner.watch(conn)
        await conn.open(opening)
        logger.info(
            "sse %s: %s streams %d symbols from %s",
            stream.conn_id, conn.user.get_username(), len(opening.symbols), peer(scope),
        )
        await _until_done(receive, stream)
    except Exception as exc:  # the store is away, say: end this stream, the client comes back
        logger.warning(
            "sse %s: stream failed (%s: %s); ending it", stream.conn_id, type(exc).__name__, exc
        )
    finally:
        try:  # the response's end first: a shutdown waits only until the connection is gone
            await stream.finish()
        finally:
            await conn.end()
            owner.collector.connection_closed()  # its objects are garbage now


async def _admit(
    stream: Stream, owner: FeedProcess, scope: dict[str, Any]
) -> tuple[Connection, Opening]:
    """Check all that can refuse the request, in the documented order; count the connection."""
    if scope.get("method") != "GET":
        raise Refusal(405, "only GET", headers=((b"allow", b"GET"),))
    origin = _header(scope, b"origin")
    if not origin_allowed(origin):
        raise Refusal(403, f"origin {origin!r} is not an allowed host")
    loop = asyncio.get_running_loop()
    outbox = Outbox(
        send=stream._send_event, write=stream.write, on_ready=owner.hub.schedule,
        batch_frames=False,  # SSE has no arrays: one event per message
    )
    session = Session(
        outbox=outbox, limits=session_limits, clock=loop.time, call_at=loop.call_at,
        on_error=count_error,
    )
    try:
        user, token = await _user(scope)
        params = parse_params(scope.get("query_string", b""))
        opening = await _plan(session, user, params)
    except DatabaseError as exc:
        logger.warning("sse from %s: database unavailable (%s)", peer(scope), type(exc).__name__)
        raise Refusal(503, DATABASE_DOWN_DETAIL, headers=_RETRY_AFTER) from None
    last = parse_last_event_id(_header(scope, b"last-event-id"), settings.FEED_RESUME_RING)
    if last is not None:
        opening = dataclasses.replace(opening, resume=last)
    conn = Connection(
        session, stream, hub=owner.hub, store=owner.store, user=user, token=token,
        conn_id=stream.conn_id,
    )
    limit = settings.FEED_MAX_CONNECTIONS_PER_USER
    if not await conn.acquire(limit):
        raise Refusal(
            429, f"at most {limit} connections per user", code=ErrorCode.TOO_MANY_CONNECTIONS,
            headers=_RETRY_AFTER,
        )
    return conn, opening


async def _user(scope: dict[str, Any]) -> tuple[Any, str | None]:
    """The user of the credentials (header, ``?ticket=``, ``?token=``) or of the session; else 401.

    A ticket admits once and is no credential to re-check later: the stream
    keeps no token then, as with a session.
    """
    key, where = handshake_token(scope)
    if key is not None:
        ticket = where == "ticket"
        user = await (user_for_ticket(key) if ticket else user_for_token(key))
        if user is None:
            what = "ticket (unknown, used or expired)" if ticket else f"token in the {where}"
            raise Refusal(
                401, f"invalid {what}", code=ErrorCode.UNAUTHORIZED, headers=_CHALLENGE
            )
        return user, (None if ticket else key)
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        raise Refusal(
            401, "authentication required: a session, 'Authorization: Token ...' or ?token=",
            code=ErrorCode.UNAUTHORIZED, headers=_CHALLENGE,
        )
    return user, None


async def _plan(session: Session, user: Any, params: StreamParams) -> Opening:
    """The stream's symbols checked by the session's subscribe rule (unknown, licence, limit)."""
    request = params.as_subscribe()
    active = await lookup_instruments(request.symbols)
    visible = await entitlements.visible_symbols(user)
    covered = await covered_by_wildcard(user) if request.wildcard else None
    try:
        return session.plan_subscribe(request, active=active, visible=visible, covered=covered)
    except ProtocolError as exc:
        raise refusal_of(exc) from None


async def _refuse(send: AsgiSend, scope: dict[str, Any], refusal: Refusal) -> None:
    logger.info("sse from %s refused (%d): %s", peer(scope), refusal.status, refusal.detail)
    headers = [
        (b"content-type", b"application/json"), (b"cache-control", b"no-cache"), *refusal.headers
    ]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": refusal.body()})


async def _until_done(receive: Any, stream: Stream) -> None:
    """Wait until the client goes (``http.disconnect``) or the stream ends itself."""

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    gone = asyncio.create_task(client_gone())
    ended = asyncio.create_task(stream.ended.wait())
    try:
        await asyncio.wait({gone, ended}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (gone, ended):
            task.cancel()
        await asyncio.gather(gone, ended, return_exceptions=True)
