"""``FeedClient``: the asyncio client of the quote stream (docs/CLIENT.md).

One supervisor task owns every decision. Each WebSocket connection (a
``Link``, marketfeed_client/link.py) has a reader task that only decodes
frames and queues them, with its link, on the supervisor's inbox; dialling
is a task of its own too. The supervisor handles what arrives in order, so
two overlapping connections (make-before-break) need no locks: their quotes
meet in one ``SeqTracker``, which drops the duplicates and names the gaps.

Reconnects follow PROTOCOL.md's close codes: 4401 ends the client with
``AuthenticationError`` (retrying the same credentials cannot help); 1001
dials again at once, after a small jitter; 4429, a lost connection or a
refused dial back off exponentially. A new connection resubscribes with
``since`` and the epoch, so a server that can replay fills the hole; one that
cannot sends snapshots, and the hole is reported as a ``Gap``.

Back-pressure: the event queue and the inbox are bounded. A caller that reads
slowly stalls the supervisor, then the readers, then the socket, and the
server conflates for us (its gaps then arrive marked with ``prev_seq``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from marketfeed_client.backoff import Backoff
from marketfeed_client.link import Closed, DialFailed, Link, handshake, read_link
from marketfeed_client.messages import (
    QUOTE_TYPES,
    AuthenticationError,
    CloseCode,
    ConnectionState,
    Event,
    FeedError,
    Gap,
    Quote,
    StateChange,
    Status,
    quote_from,
    server_error,
)
from marketfeed_client.tracker import SeqTracker

logger = logging.getLogger(__name__)

# "ticket": before each connect, trade the token for a one-time ticket over
# HTTPS (POST /api/ws-ticket/) and put only that in the URL (PROTOCOL.md, "Tickets").
AUTH_WAYS = ("header", "query", "message", "ticket")
TICKET_TIMEOUT_S = 10.0
WIRE_FORMATS = ("json", "msgpack")
INBOX_SIZE = 1024  # decoded messages waiting for the supervisor, over all connections


_END = object()  # ends the iterators when the client is closed


@dataclass
class _Callbacks:
    on_gap: Callable[[Gap], None] | None = None
    on_status: Callable[[Status], None] | None = None
    on_state: Callable[[StateChange], None] | None = None

    def call(self, event: Event) -> None:
        """Hand ``event`` to its callback; a failing callback is logged, never fatal."""
        callback: Callable[[Any], None] | None = None
        if isinstance(event, Gap):
            callback = self.on_gap
        elif isinstance(event, Status):
            callback = self.on_status
        elif isinstance(event, StateChange):
            callback = self.on_state
        if callback is not None:
            try:
                callback(event)
            except Exception:
                logger.exception("%s callback failed", type(event).__name__)


@dataclass
class _Options:
    url: str
    symbols: list[str]
    token: str | None
    auth: str
    wire_format: str
    throttle_ms: int | None
    reconnect_jitter_s: float
    connect: Callable[..., Awaitable[Any]]


class FeedClient:
    """A self-healing subscription to ``symbols`` (see the module docstring and docs/CLIENT.md).

    Use as ``async with FeedClient(url, ["AAPL"], token=...) as feed:`` and
    read ``feed.quotes()`` (quotes only; gaps, statuses and state changes go
    to the ``on_*`` callbacks) or ``feed.events()`` (everything, in order).
    Read from one iterator at a time. A fatal error (``AuthenticationError``,
    ``ServerError`` for a refused subscription) is raised from the iterator.
    """

    def __init__(
        self,
        url: str,
        symbols: list[str],
        *,
        token: str | None = None,
        auth: str = "header",
        wire_format: str = "json",
        throttle_ms: int | None = None,
        backoff: Backoff | None = None,
        reconnect_jitter_s: float = 1.0,
        on_gap: Callable[[Gap], None] | None = None,
        on_status: Callable[[Status], None] | None = None,
        on_state: Callable[[StateChange], None] | None = None,
        queue_size: int = 10_000,
        connect: Callable[..., Awaitable[Any]] = websockets.connect,
    ) -> None:
        if not symbols:
            raise ValueError("subscribe to at least one symbol")
        if auth not in AUTH_WAYS:
            raise ValueError(f"auth must be one of {', '.join(AUTH_WAYS)}")
        if wire_format not in WIRE_FORMATS:
            raise ValueError(f"wire_format must be one of {', '.join(WIRE_FORMATS)}")
        if urlsplit(url).scheme not in ("ws", "wss"):
            raise ValueError(f"not a WebSocket URL (ws:// or wss://): {url!r}")
        self._opts = _Options(
            url, [s.upper() for s in symbols], token, auth, wire_format, throttle_ms,
            reconnect_jitter_s, connect,
        )
        self._backoff = backoff or Backoff()
        self._callbacks = _Callbacks(on_gap, on_status, on_state)
        self._tracker = SeqTracker()
        self._events: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self._inbox: asyncio.Queue[tuple[Link | None, Any]] = asyncio.Queue(maxsize=INBOX_SIZE)
        self._links: set[Link] = set()
        self._primary: Link | None = None
        self._numbers = itertools.count(1)
        self._dialing: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closers: set[asyncio.Task[None]] = set()
        self._readers: set[asyncio.Task[None]] = set()
        self.state = ConnectionState.CLOSED

    # --- the public surface -------------------------------------------------------------

    async def __aenter__(self) -> FeedClient:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start connecting in the background (``async with`` does it)."""
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="feed-client")

    async def close(self) -> None:
        """Close every connection and end the iterators; idempotent."""
        tasks = [t for t in (self._supervisor, self._dialing) if t is not None]
        tasks += self._readers
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in list(self._links):
            self._close_link(link)
        await asyncio.gather(*self._closers, return_exceptions=True)
        self._set_state(ConnectionState.CLOSED, "closed by the application", emit=False)
        while self._events.full():  # a closed client delivers nothing more
            self._events.get_nowait()
        self._events.put_nowait(_END)

    async def events(self) -> AsyncIterator[Event]:
        """Every ``Quote``, ``Gap``, ``Status`` and ``StateChange``, in order, until closed."""
        while True:
            item = await self._events.get()
            if item is _END:
                self._events.put_nowait(_END)  # for any other iterator
                return
            if isinstance(item, BaseException):
                self._events.put_nowait(item)  # fatal: every later read fails the same way
                raise item
            yield item

    async def quotes(self) -> AsyncIterator[Quote]:
        """Only the quotes (snapshots included, marked ``snapshot=True``), deduplicated."""
        async for event in self.events():
            if isinstance(event, Quote):
                yield event

    # --- the supervisor ---------------------------------------------------------------------

    async def _supervise(self) -> None:
        self._set_state(ConnectionState.CONNECTING, self._opts.url)
        self._dial(0.0)
        try:
            while True:
                link, item = await self._inbox.get()
                await self._handle(link, item)
        except FeedError as exc:
            await self._emit(exc)
        except Exception as exc:  # a bug of ours: say so rather than hang the caller
            logger.exception("feed client failed")
            await self._emit(FeedError(f"client failure: {exc!r}"))
        finally:
            for link in list(self._links):
                self._close_link(link)

    async def _handle(self, link: Link | None, item: Any) -> None:
        if isinstance(item, DialFailed):
            self._dialing = None
            self._on_dial_failed(item.error)
        elif link is None:
            return
        elif isinstance(item, Closed):
            self._on_closed(link, item)
        elif link in self._links:
            await self._on_message(link, item)

    async def _on_message(self, link: Link, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind in QUOTE_TYPES:
            await self._on_quote(link, msg)
        elif kind == "welcome":
            self._on_welcome(link, msg)
        elif kind == "subscribed" and msg.get("id") == link.subscribe_id:
            self._on_subscribed(link, msg)
        elif kind == "status":
            await self._on_status(msg)
        elif kind == "error":
            self._on_error(link, msg)
        elif kind == "reconnect" and link is self._primary:
            self._on_reconnect(msg)

    async def _on_quote(self, link: Link, msg: dict[str, Any]) -> None:
        if msg.get("type") == "snapshot" and isinstance(msg.get("epoch"), str):
            link.epoch = msg["epoch"]
        try:
            quote = quote_from(msg, link.epoch)
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("link %d: malformed %s dropped (%s)", link.number, msg.get("type"), exc)
            return
        deliver, gap = self._tracker.accept(quote)
        if gap is not None:
            await self._emit(gap)
        if deliver:
            await self._emit(quote)

    def _on_welcome(self, link: Link, msg: dict[str, Any]) -> None:
        link.epoch = str(msg.get("epoch", ""))
        link.heard_welcome(msg.get("heartbeat_s"))
        link.subscribe_id = f"subscribe-{link.number}"
        request: dict[str, Any] = {
            "op": "subscribe", "symbols": self._opts.symbols, "id": link.subscribe_id,
        }
        if self._opts.throttle_ms is not None:
            request["throttle_ms"] = self._opts.throttle_ms
        wildcard = "*" in self._opts.symbols  # resume whatever it brought us
        epoch, since = self._tracker.since(None if wildcard else self._opts.symbols)
        if since and epoch is not None:
            request.update(since=since, epoch=epoch)
        self._send(link, request)

    def _on_subscribed(self, link: Link, msg: dict[str, Any]) -> None:
        """The switch-over point: this link now carries the stream; an older one goes."""
        recovered = msg.get("recovered")
        if isinstance(recovered, dict):
            for symbol, ok in recovered.items():
                if ok is not True:
                    self._tracker.not_recovered(str(symbol))
        old, self._primary = self._primary, link
        if old is not None and old is not link:
            self._close_link(old)
        self._backoff.reset()
        resumed = isinstance(recovered, dict) and all(v is True for v in recovered.values())
        detail = f"subscribed to {len(self._opts.symbols)} symbol(s)"
        if resumed and recovered:
            detail += ", resumed"
        self._set_state(ConnectionState.LIVE, detail)

    async def _on_status(self, msg: dict[str, Any]) -> None:
        status = Status(str(msg.get("symbol", "")), str(msg.get("state", "")))
        if status.state == "revoked" and status.symbol in self._opts.symbols:
            # The server dropped it; asking again on a reconnect would be refused.
            self._opts.symbols.remove(status.symbol)
            self._tracker.forget(status.symbol)
            if not self._opts.symbols:
                await self._emit(status)
                raise FeedError("every subscription was revoked")
        await self._emit(status)

    def _on_error(self, link: Link, msg: dict[str, Any]) -> None:
        error = server_error(msg)
        link.last_error = error.message
        if msg.get("id") == link.subscribe_id and link.subscribe_id:
            if error.code == "rate_limited":  # not refused, only early: try again later
                self._close_link(link)
                return
            raise error
        logger.info("link %d: server error %s", link.number, error)

    def _on_reconnect(self, msg: dict[str, Any]) -> None:
        """Make-before-break: dial a second connection while this one still streams."""
        within = msg.get("within_s")
        within_s = float(within) if isinstance(within, int | float) and within > 0 else 1.0
        self._set_state(
            ConnectionState.RECONNECTING,
            f"server asks to move ({msg.get('reason', 'unspecified')}) within {within_s:g} s",
        )
        if self._dialing is None:
            self._dial(self._backoff.jitter(min(self._opts.reconnect_jitter_s, within_s / 2)))

    def _on_closed(self, link: Link, closed: Closed) -> None:
        self._close_link(link)  # a no-op unless it went silent: then it must go for good
        if closed.code == CloseCode.UNAUTHORIZED:
            raise AuthenticationError(link.last_error or closed.reason or "unauthorized (4401)")
        if closed.code == CloseCode.UNSUPPORTED_FORMAT:  # the same format would be refused again
            why = link.last_error or closed.reason or "unknown format"
            fmt = self._opts.wire_format
            raise FeedError(f"the server refused wire format {fmt!r}: {why} (1003)")
        if self._links or self._dialing is not None:
            return  # another connection carries on, or is on its way
        if closed.code == CloseCode.GOING_AWAY:
            delay = self._backoff.jitter(self._opts.reconnect_jitter_s)
        else:
            delay = self._backoff.next_delay()
        why = closed.reason or link.last_error or f"closed {closed.code}"
        self._set_state(ConnectionState.RECONNECTING, f"{why}; reconnecting in {delay:.1f} s")
        self._dial(delay)

    def _on_dial_failed(self, error: BaseException) -> None:
        if isinstance(error, InvalidStatus) and error.response.status_code == 403:
            if self._opts.token is not None and self._opts.auth != "message":
                raise AuthenticationError("the server refused the token (HTTP 403)")
        if isinstance(error, urllib.error.HTTPError) and error.code in (401, 403):
            raise AuthenticationError(f"the server refused the token (HTTP {error.code})")
        if self._links:
            return  # make-before-break failed; the old link's 1001 close will dial again
        delay = self._backoff.next_delay()
        self._set_state(
            ConnectionState.RECONNECTING, f"cannot connect ({error}); retrying in {delay:.1f} s"
        )
        self._dial(delay)

    # --- connections ------------------------------------------------------------------------

    def _dial(self, delay: float) -> None:
        self._dialing = asyncio.create_task(self._dialer(delay), name="feed-client-dial")

    async def _dialer(self, delay: float) -> None:
        await asyncio.sleep(delay)
        opts = self._opts
        try:
            if opts.auth == "ticket" and opts.token is not None:
                url, headers = handshake(opts.url, None, "header", opts.wire_format)
                url = with_query(url, ticket=await fetch_ticket(opts.url, opts.token))
            else:
                url, headers = handshake(opts.url, opts.token, opts.auth, opts.wire_format)
            ws = await self._opts.connect(url, additional_headers=headers)
        except Exception as exc:  # refused, timed out, HTTP error, broken handshake
            await self._inbox.put((None, DialFailed(exc)))
            return
        link = Link(ws, next(self._numbers))
        self._links.add(link)
        reader = asyncio.create_task(
            read_link(link, self._inbox), name=f"feed-client-read-{link.number}"
        )
        self._readers.add(reader)
        reader.add_done_callback(self._readers.discard)
        if self._opts.auth == "message" and self._opts.token is not None:
            self._send(link, {"op": "auth", "token": self._opts.token, "id": "auth"})
        self._dialing = None

    def _send(self, link: Link, request: dict[str, Any]) -> None:
        """Send in the background: a link that cannot take it will report its close."""
        task = asyncio.create_task(self._send_now(link, json.dumps(request)))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    @staticmethod
    async def _send_now(link: Link, text: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await link.ws.send(text)

    def _close_link(self, link: Link) -> None:
        """Close ``link`` (normal closure) without waiting; its reader reports the end."""
        self._links.discard(link)
        if link is self._primary:
            self._primary = None
        task = asyncio.create_task(link.ws.close())
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    # --- events -----------------------------------------------------------------------------

    def _set_state(self, state: ConnectionState, detail: str, *, emit: bool = True) -> None:
        self.state = state
        if emit:
            change = StateChange(state, detail)
            self._callbacks.call(change)
            with contextlib.suppress(asyncio.QueueFull):  # state lines may drop; data never
                self._events.put_nowait(change)

    async def _emit(self, item: Event | BaseException) -> None:
        if not isinstance(item, BaseException):
            self._callbacks.call(item)
        await self._events.put(item)


async def fetch_ticket(ws_url: str, token: str) -> str:
    """A one-time ticket for the next handshake: ``POST /api/ws-ticket/`` with the token.

    The HTTP side of the same server: ``https`` for ``wss``, and the path of
    ``ws/quotes/`` with ``api/ws-ticket/`` in its place.
    """
    parts = urlsplit(ws_url)
    root = parts.path[: -len("ws/quotes/")] if parts.path.endswith("ws/quotes/") else "/"
    scheme = "https" if parts.scheme == "wss" else "http"
    ticket_url = urlunsplit((scheme, parts.netloc, f"{root}api/ws-ticket/", "", ""))
    request = urllib.request.Request(
        ticket_url, data=b"", method="POST",
        headers={"Authorization": f"Token {token}", "Accept": "application/json"},
    )

    def post() -> str:
        with urllib.request.urlopen(request, timeout=TICKET_TIMEOUT_S) as response:
            return str(json.load(response)["ticket"])

    return await asyncio.to_thread(post)


def with_query(url: str, **params: str) -> str:
    """``url`` with these query parameters added."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))
