"""``GET /sse/quotes/?symbols=A,B``: the quote stream as Server-Sent Events.

For clients that only listen (a browser's ``EventSource``, ``curl -N``): the
same ``quote``, ``snapshot``, ``status`` and ``heartbeat`` messages as on the
WebSocket, one SSE event each, ``event:`` naming the message type and
``data:`` holding the very JSON text. Quotes and snapshots carry
``id: SYMBOL:seq``, so the browser's automatic reconnect sends it back as
``Last-Event-ID`` and the stream resumes from the quote store's ring
(PROTOCOL.md, "Server-Sent Events").

A stream is a hub subscriber like a WebSocket connection (feeds/deliver/hub.py): the
same groups, the same store, the same conflating ``Outbox``, heartbeats from
the hub's sweep. Under daphne a flush goes to Twisted's request in one write,
and the request's channel relays the TCP transport's pause and resume to the
outbox, so a slow reader conflates rather than buffering without bound.

Everything is checked before the ``200``: credentials (401), the browser's
Origin (403), symbols and parameters (400), entitlements (403), the per-user
connection limit (429); each refusal is a JSON ``{"detail": ...}``.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import random
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.db import DatabaseError

from feeds import auth, entitlements

from feeds.core import events, protocol
from feeds.auth import handshake_token, origin_allowed, peer, user_for_token
from feeds.edges.websocket import all_instruments, lookup_instruments
from feeds.deliver.delivery import Delivery
from feeds.entitlements import visible_symbols
from feeds.deliver.hub import Hub, get_hub
from feeds.edges.middleware import DETAIL as DATABASE_DOWN_DETAIL
from feeds.edges.middleware import RETRY_AFTER_S
from feeds.core.outbox import Outbox
from feeds.core.protocol import ErrorCode, State
from feeds.publish.store import QuoteStore, get_store
from feeds.core.throttle import Throttle
from feeds.deliver.server import SERVER_SEND, _limit_socket_buffer, _Producer

logger = logging.getLogger(__name__)

PATH = "/sse/quotes/"
# The reconnect delay each stream suggests, drawn per stream so that the
# clients of a restarted server do not all come back in the same instant.
RETRY_MS_MIN, RETRY_MS_MAX = 1000, 3000
# Live quotes of one symbol kept while its snapshot or replay is read (as the consumer does).
HOLD_BACK_MAX = 256
# A resume reads each other symbol's ring from its newest seq less the ring's
# size; this many quotes may arrive between the two reads before that fails.
RING_READ_MARGIN = 16

AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # nginx (deploy/nginx) must pass every event at once, not fill a buffer first.
    (b"x-accel-buffering", b"no"),
]


class Refusal(Exception):
    """A request refused before the stream starts: an HTTP status and a JSON body."""

    def __init__(
        self, status: int, detail: str, *, code: str = "", symbols: tuple[str, ...] = (),
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.code = status, detail, code
        self.symbols, self.headers = symbols, headers

    def body(self) -> bytes:
        obj: dict[str, Any] = {"detail": self.detail}
        if self.code:
            obj["code"] = self.code
        if self.symbols:
            obj["symbols"] = list(self.symbols)
        return json.dumps(obj).encode()


# --- the pure part: parameters and events -------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamParams:
    """What the query string asks: symbols (``wildcard``: ``*`` was among them), a throttle."""

    symbols: tuple[str, ...]
    wildcard: bool = False
    throttle_ms: int = 0


def parse_params(query_string: bytes) -> StreamParams:
    """``?symbols=A,B&throttle_ms=N`` as ``StreamParams``; ``Refusal`` (400) when it is bad."""
    query = parse_qs(query_string.decode("latin-1"))
    names = [s.strip().upper() for raw in query.get("symbols", ()) for s in raw.split(",")]
    unique = tuple(dict.fromkeys(s for s in names if s))
    wildcard = protocol.WILDCARD in unique
    symbols = tuple(s for s in unique if s != protocol.WILDCARD)
    if not symbols and not wildcard:
        raise Refusal(
            400, "'symbols' must name at least one symbol (comma-separated)",
            code=ErrorCode.BAD_REQUEST,
        )
    bad = tuple(s for s in symbols if not protocol.is_symbol(s))
    if bad:
        raise _unknown(bad)
    return StreamParams(symbols, wildcard, _throttle_ms(query.get("throttle_ms", ["0"])[-1]))


def _throttle_ms(raw: str) -> int:
    value = int(raw) if raw.strip().isdigit() else -1
    if not 0 <= value <= protocol.MAX_THROTTLE_MS:
        raise Refusal(
            400, f"'throttle_ms' must be an integer from 0 to {protocol.MAX_THROTTLE_MS}",
            code=ErrorCode.BAD_REQUEST,
        )
    return value


def _unknown(symbols: tuple[str, ...]) -> Refusal:
    shown = ", ".join(s[:40] for s in symbols[:20])
    return Refusal(
        400, f"unknown symbol(s): {shown}", code=ErrorCode.UNKNOWN_SYMBOL, symbols=symbols
    )


def parse_last_event_id(value: str | None) -> tuple[str, int] | None:
    """``(symbol, seq)`` of ``Last-Event-ID: SYMBOL:seq``; None when absent or not that form."""
    if not value:
        return None
    symbol, _, seq = value.strip().rpartition(":")
    if not protocol.is_symbol(symbol) or not seq.isascii() or not seq.isdigit() or len(seq) > 18:
        return None
    return symbol, int(seq)


_TYPE_PREFIX = '{"type":"'
_SYMBOL_FIELD = '"symbol":"'
_TS_FIELD = '"ts":'


def event(text: str) -> str:
    """The SSE event of one server message (a JSON object text): id, event and data lines.

    Read from the layout ``feeds.core.protocol`` writes (type first, no raw
    newlines); anything else is decoded, so the event is right either way.
    """
    start = len(_TYPE_PREFIX)
    kind = text[start : text.find('"', start)] if text.startswith(_TYPE_PREFIX) else ""
    if not kind or "\n" in text:
        return _event_of_object(text)
    if kind in ("quote", "snapshot"):
        start = text.find(_SYMBOL_FIELD) + len(_SYMBOL_FIELD)
        symbol = text[start : text.find('"', start)]
        return f"id: {symbol}:{protocol.quote_seq(text)}\nevent: {kind}\ndata: {text}\n\n"
    return f"event: {kind}\ndata: {text}\n\n"


def _event_of_object(text: str) -> str:
    obj = json.loads(text)
    kind = obj.get("type", "message")
    head = f"id: {obj['symbol']}:{obj['seq']}\n" if kind in ("quote", "snapshot") else ""
    return f"{head}event: {kind}\ndata: {json.dumps(obj, separators=(',', ':'))}\n\n"


def quote_ts(text: str) -> int:
    """The ``ts`` of a stored quote text (the last field ``encode_quote`` writes)."""
    at = text.rfind(_TS_FIELD)
    if at >= 0:
        digits = text[at + len(_TS_FIELD) :].rstrip("}").split(",")[0]
        if digits.isascii() and digits.isdigit():
            return int(digits)
    ts: int = json.loads(text)["ts"]
    return ts


def resume_from(ring: list[str], cutoff_ts: int) -> list[str] | None:
    """The ring entries a client that last saw a quote stamped ``cutoff_ts`` may lack.

    From the newest entry stamped at or before ``cutoff_ts`` (the client may
    have it: one duplicate at most) to the end; None when every entry is
    newer and the ring does not start at the symbol's first quote (the ring
    no longer reaches back). The ticker stamps quotes in the order it
    publishes them, and a stream delivers them in that order, so whatever
    the client got of this symbol is not newer than the cutoff.
    """
    start = bisect.bisect_right(ring, cutoff_ts, key=quote_ts) - 1
    if start >= 0:
        return ring[start:]
    if ring and protocol.quote_seq(ring[0]) == 1:
        return ring
    return None if ring else []


# --- the stream --------------------------------------------------------------------------------


class Stream(Delivery):
    """One SSE response: a hub subscriber with a fixed set of symbols."""

    kind = "sse"  # feeds.edges.metrics counts connections by kind

    def __init__(
        self,
        scope: dict[str, Any],
        send: AsgiSend,
        *,
        user: Any,
        token: str | None,
        params: StreamParams,
    ) -> None:
        self.scope, self._send, self.user, self.params = scope, send, user, params
        self.conn_id = secrets.token_hex(4)
        self.user_key = str(user.pk)
        self.token_digest = auth.token_digest(token) if token is not None else None
        self.store: QuoteStore = get_store()
        # symbol -> seq of the newest quote or snapshot handed to the outbox;
        # None while its start is read.
        self.subs: dict[str, int | None] = {}
        self._backlog: dict[str, deque[tuple[int, str]]] = {}
        self.ended = asyncio.Event()
        # The last message of a stream that ends itself (revoked credentials).
        self.farewell: str | None = None
        # The start and wildcard additions change ``subs`` one at a time.
        self._subs_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.hub: Hub | None = None
        self._request = _daphne_request(scope.get(SERVER_SEND))

    async def start(self, hub: Hub, active: dict[str, bool], last: tuple[str, int] | None) -> None:
        """Send the head, the welcome and each symbol's starting point; quotes flow from then on."""
        self.hub = hub
        # One event per message: SSE has no arrays, so no batching.
        self.outbox = Outbox(
            send=self._send_event, write=self._write, on_ready=hub.schedule, batch_frames=False
        )
        loop = asyncio.get_running_loop()
        self.throttle = Throttle(clock=loop.time, call_at=loop.call_at, release=self.outbox.quote)
        await self._send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        retry = random.randint(RETRY_MS_MIN, RETRY_MS_MAX)
        await self._body(f"retry: {retry}\n\n".encode())
        self._watch()
        hub.register(self)
        self.outbox.control(
            protocol.welcome(
                user=self.user.get_username(), heartbeat_s=settings.FEED_HEARTBEAT_S,
                max_symbols=settings.FEED_MAX_SYMBOLS, epoch=await self.store.epoch(),
            )
        )
        async with self._subs_lock:
            await self._open(tuple(active), active, last)

    async def _open(
        self, symbols: tuple[str, ...], active: dict[str, bool], last: tuple[str, int] | None
    ) -> None:
        """Route ``symbols`` here, then send a ``subscribed`` and each symbol's start.

        The start is the missed quotes for a resumed symbol, else a snapshot (or
        ``status`` ``halted``). Live quotes are held back meanwhile: the store is
        written before a quote is published, so nothing falls between.
        """
        for symbol in symbols:
            self.subs[symbol] = None
            self._backlog[symbol] = deque(maxlen=HOLD_BACK_MAX)
        assert self.hub is not None
        await self.hub.join(self, symbols)
        latest = await self.store.latest(symbols)
        epoch = await self.store.epoch()
        missed = await self._missed(last, latest) if last is not None else {}
        recovered = {s: missed.get(s) is not None for s in symbols} if last is not None else None
        self.outbox.control(protocol.subscribed(symbols, None, recovered))
        for symbol in symbols:
            backlog = self._backlog.pop(symbol, ())
            if symbol not in self.subs:
                continue
            self._start_symbol(
                symbol, active[symbol], missed.get(symbol), latest.get(symbol), epoch
            )
            for seq, text in backlog:
                self.deliver_quote(symbol, seq, text)

    def _start_symbol(
        self,
        symbol: str,
        active: bool,
        missed: list[str] | None,
        latest: tuple[int, str] | None,
        epoch: str,
    ) -> None:
        """Hand the outbox ``symbol``'s start: missed quotes or a snapshot; a halt's status."""
        throttle_ms = self.params.throttle_ms
        if missed is not None:
            newest = (latest or (0, ""))[0]
            self.subs[symbol] = protocol.quote_seq(missed[0]) - 1 if missed else newest
            self.throttle.set(symbol, throttle_ms, wait=False)
            for text in missed:
                self.deliver_quote(symbol, protocol.quote_seq(text), text)
        else:
            seq, text = latest if latest is not None and active else (0, "")
            if text:
                self.outbox.control(protocol.snapshot_from_quote(text, epoch))
            self.subs[symbol] = seq
            self.throttle.set(symbol, throttle_ms)
        if not active:
            self.deliver_status(symbol, protocol.status(symbol, State.HALTED))

    async def _missed(
        self, last: tuple[str, int], latest: dict[str, tuple[int, str]]
    ) -> dict[str, list[str] | None]:
        """What each symbol missed after the client's last event ``last`` (None: unknown).

        The named symbol resumes exactly after its seq. The others resume from
        the ring by time: from their newest quote stamped no later than the
        named one (``resume_from``). One ring read for all of them.
        """
        named, seq = last
        if named not in self.subs or not 1 <= seq <= latest.get(named, (0, ""))[0]:
            return {}  # not this stream's, or a seq this store has not reached (another epoch)
        ring = settings.FEED_RESUME_RING
        since = {
            s: max(0, n - ring + RING_READ_MARGIN) for s, (n, _) in latest.items() if s != named
        }
        since[named] = seq - 1  # from the named quote itself: its ts is the cutoff
        found = await self.store.replay(since)
        own = found.get(named)
        if not own or protocol.quote_seq(own[0]) != seq:
            return {}
        cutoff = quote_ts(own[0])
        missed: dict[str, list[str] | None] = {named: own[1:]}
        for symbol in self.subs:
            if symbol != named:
                ring_texts = found.get(symbol, [])  # a symbol without quotes has an empty ring
                missed[symbol] = None if ring_texts is None else resume_from(ring_texts, cutoff)
        return missed

    # --- writing -------------------------------------------------------------------------

    async def _body(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def _send_event(self, text: str, shared: bool = False) -> None:
        await self._body(event(text).encode())

    def _write(self, texts: list[str], shared: bool) -> bool:
        """Under daphne: the whole flush in one write to the request, now. False elsewhere."""
        request = self._request
        if request is None:
            return False
        if not request.finished and request.channel is not None:
            request.write("".join(map(event, texts)).encode())
        return True  # a finished request drops them, as a reader that left would

    def _watch(self) -> None:
        """Conflate while Twisted's buffer for this client is over the high-water mark."""
        request = self._request
        if request is None or request.channel is None:
            return
        try:
            transport = request.channel.transport
            transport.bufferSize = settings.FEED_WRITE_BUFFER_BYTES
            request.registerProducer(_Producer(self.outbox.pause, self.outbox.resume), True)
        except Exception:  # an unexpected request: keep serving, without back-pressure
            logger.warning("sse %s: no back-pressure here", self.conn_id, exc_info=True)
            return
        if settings.FEED_SOCKET_BUFFER_BYTES:
            _limit_socket_buffer(transport, settings.FEED_SOCKET_BUFFER_BYTES)
        if getattr(request.channel, "_waitingForTransport", False):
            self.outbox.pause()  # already full before we registered

    async def end(self) -> None:
        """Stop routing quotes here and forget the connection count; idempotent."""
        self.ended.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.hub is not None:
            hub, self.hub = self.hub, None
            await hub.unregister(self, list(self.subs))
            self.throttle.close()
        self.subs.clear()
        request = self._request
        if request is not None and request.producer is not None and request.channel is not None:
            request.unregisterProducer()

    # --- called by the hub -------------------------------------------------------------------

    def on_server_event(self, event: dict[str, Any]) -> None:
        """Revoked credentials end the stream, revoked entitlements drop their symbols,
        and instruments listed later join a ``*`` stream."""
        if self.ended.is_set():
            return
        kind = event.get("type")
        if entitlements.concerns(event, self.user_key):
            self._spawn(entitlements.enforce([self]))
        if kind == events.AUTH_REVOKED:
            tokens, users = event.get("tokens", ()), event.get("users", ())
            if self.token_digest in tokens or self.user_key in users:
                logger.info("sse %s: credentials of %s revoked", self.conn_id, self.user)
                self.farewell = protocol.error(ErrorCode.UNAUTHORIZED, "credentials revoked")
                self.ended.set()
        elif kind == events.INSTRUMENTS_ADDED and self.params.wildcard:
            symbols = event.get("symbols")
            if isinstance(symbols, list):
                self._spawn(self._wildcard_add([s for s in symbols if isinstance(s, str)]))

    async def _wildcard_add(self, symbols: list[str]) -> None:
        """Take new instruments into a ``*`` stream: a ``subscribed`` naming them, their starts.

        Those past ``max_symbols`` are left out, named in a ``too_many_symbols`` error event.
        """
        async with self._subs_lock:
            active = await _covered(self.user, [s for s in symbols if s not in self.subs])
            fresh = tuple(active)
            room = max(0, settings.FEED_MAX_SYMBOLS - len(self.subs))
            if len(fresh) > room:
                self.outbox.control(
                    protocol.error(
                        ErrorCode.TOO_MANY_SYMBOLS,
                        "new instruments left out of '*': "
                        f"at most {settings.FEED_MAX_SYMBOLS} symbols",
                        symbols=fresh[room:],
                    )
                )
                fresh = fresh[:room]
            if fresh and not self.ended.is_set():
                await self._open(fresh, active, None)

    def on_epoch(self, epoch: str) -> None:
        """Numbering restarted: a fresh snapshot of each symbol before any new-epoch quote."""
        if self.ended.is_set() or not self.subs:
            return
        symbols = tuple(self.subs)
        self._spawn(self._resnapshot(symbols))

    async def _resnapshot(self, symbols: tuple[str, ...]) -> None:
        for symbol in symbols:
            self.subs[symbol] = None
            self._backlog[symbol] = deque(maxlen=HOLD_BACK_MAX)
        latest = await self.store.latest(symbols)
        epoch = await self.store.epoch()
        for symbol in symbols:
            backlog = self._backlog.pop(symbol, ())
            if symbol in self.subs:
                self._start_symbol(symbol, True, None, latest.get(symbol), epoch)
                for seq, text in backlog:
                    self.deliver_quote(symbol, seq, text)

    def _spawn(self, job: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await job
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("sse %s: background job failed (%s)", self.conn_id, exc)

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _daphne_request(send: Any) -> Any:
    """daphne's ``WebRequest`` behind ``partial(server.handle_reply, request)``, else None."""
    request = getattr(send, "args", (None,))[0] if getattr(send, "args", None) else None
    needed = ("registerProducer", "write", "channel", "finished")
    return request if request is not None and all(hasattr(request, a) for a in needed) else None


# --- the ASGI application ------------------------------------------------------------------


async def stream_quotes(scope: dict[str, Any], receive: Any, send: AsgiSend) -> None:
    """The ASGI app of ``GET /sse/quotes/`` (inside channels' AuthMiddlewareStack: the session)."""
    await receive()  # the request (a GET has no body)
    try:
        stream, active, last = await _admit(scope, send)
    except Refusal as refusal:
        await _refuse(send, scope, refusal)
        return
    try:
        await stream.start(await get_hub(), active, last)
        logger.info(
            "sse %s: %s streams %d symbols from %s", stream.conn_id, stream.user.get_username(),
            len(active), peer(scope),
        )
        await _until_done(receive, stream)
    except Exception as exc:  # the store is away, say: end this stream, the client comes back
        logger.warning(
            "sse %s: stream failed (%s: %s); ending it", stream.conn_id, type(exc).__name__, exc
        )
    finally:
        await stream.end()
        await stream.store.connection_release(stream.user_key, stream.conn_id)
    last_words = event(stream.farewell).encode() if stream.farewell else b""
    await send({"type": "http.response.body", "body": last_words, "more_body": False})


async def _admit(
    scope: dict[str, Any], send: AsgiSend
) -> tuple[Stream, dict[str, bool], tuple[str, int] | None]:
    """Check all that can refuse the request, in the documented order; count the connection."""
    if scope.get("method") not in ("GET",):
        raise Refusal(405, "only GET", headers=((b"allow", b"GET"),))
    origin = auth._header(scope, b"origin")
    if not origin_allowed(origin):
        raise Refusal(403, f"origin {origin!r} is not an allowed host")
    try:
        user, token = await _user(scope)
        params = parse_params(scope.get("query_string", b""))
        active = await _instruments(user, params)
    except DatabaseError as exc:
        logger.warning("sse from %s: database unavailable (%s)", peer(scope), type(exc).__name__)
        raise Refusal(503, DATABASE_DOWN_DETAIL, headers=_RETRY_AFTER) from None
    last = parse_last_event_id(auth._header(scope, b"last-event-id"))
    stream = Stream(scope, send, user=user, token=token, params=params)
    limit = settings.FEED_MAX_CONNECTIONS_PER_USER
    if not await stream.store.connection_acquire(stream.user_key, stream.conn_id, limit):
        raise Refusal(
            429, f"at most {limit} connections per user", code=ErrorCode.TOO_MANY_CONNECTIONS,
            headers=_RETRY_AFTER,
        )
    return stream, active, last


async def _user(scope: dict[str, Any]) -> tuple[Any, str | None]:
    """The user of the token (header, then ``?token=``) or else of the session; 401 when none."""
    key, where = handshake_token(scope)
    if key is not None:
        user = await user_for_token(key)
        if user is None:
            raise Refusal(
                401, f"invalid token in the {where}",
                code=ErrorCode.UNAUTHORIZED, headers=_CHALLENGE,
            )
        return user, key
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        raise Refusal(
            401, "authentication required: a session, 'Authorization: Token ...' or ?token=",
            code=ErrorCode.UNAUTHORIZED, headers=_CHALLENGE,
        )
    return user, None


_CHALLENGE = ((b"www-authenticate", b"Token"),)
_RETRY_AFTER = ((b"retry-after", str(RETRY_AFTER_S).encode()),)


async def _instruments(user: Any, params: StreamParams) -> dict[str, bool]:
    """``{symbol: active}`` of the stream, in order (``*``: then the rest it covers, sorted).

    400 for unknown symbols, then 403 for symbols the user is not entitled
    to, then 400 when the stream would be longer than ``max_symbols``.
    """
    active = await lookup_instruments(params.symbols)
    unknown = tuple(s for s in params.symbols if s not in active)
    if unknown:
        raise _unknown(unknown)
    visible = await visible_symbols(user)
    refused = entitlements.not_visible(params.symbols, visible)
    if refused:
        raise Refusal(
            403, "not entitled to: " + ", ".join(refused[:20]),
            code=ErrorCode.NOT_ENTITLED, symbols=refused,
        )
    found = {s: active[s] for s in params.symbols}
    if params.wildcard:
        covered = await _covered(user)
        found.update((s, covered[s]) for s in sorted(covered) if s not in found)
    limit = settings.FEED_MAX_SYMBOLS
    if len(found) > limit:
        raise Refusal(
            400, f"{len(found)} symbols; at most {limit} per stream",
            code=ErrorCode.TOO_MANY_SYMBOLS,
        )
    return found


async def _covered(user: Any, among: list[str] | None = None) -> dict[str, bool]:
    """``{symbol: active}`` of what ``*`` covers for ``user`` (only those ``among``, if given)."""
    visible = await visible_symbols(user)
    if among is not None:
        return await lookup_instruments([s for s in among if visible is None or s in visible])
    if visible is None:
        return await all_instruments()
    return await lookup_instruments(sorted(visible))


async def _refuse(send: AsgiSend, scope: dict[str, Any], refusal: Refusal) -> None:
    logger.info("sse from %s refused (%d): %s", peer(scope), refusal.status, refusal.detail)
    headers = [
        (b"content-type", b"application/json"), (b"cache-control", b"no-cache"), *refusal.headers
    ]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": refusal.body()})


async def _until_done(receive: Any, stream: Stream) -> None:
    """Wait until the client goes (``http.disconnect``) or the stream ends itself (revocation)."""
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

