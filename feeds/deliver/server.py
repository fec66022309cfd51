"""The server underneath the feed (daphne, Twisted, autobahn): what ASGI does not carry.

ASGI gives an application ``send`` and nothing else, but a market data feed
needs more, and this adapter takes it from under daphne:

- back-pressure: to conflate for a slow client *before* the kernel and the
  server buffer seconds of quotes, the consumer must know when the client's
  transport buffer is full (docs/STACK.md, "Socket buffers": loopback autotunes a send buffer up
  to ~4 MiB);
- close codes 1001 and 1009: autobahn's ``sendClose`` (daphne) refuses codes
  other than 1000 and 3000-4999 and turns them into 1011;
- speed: a quote goes to many clients as the very same text. Through ASGI
  each copy would pass the session wrapper, daphne's reply handler and
  autobahn's generic ``sendMessage``, and be encoded and framed again. Here
  the frame is built once per quote and wire format (feeds/deliver/server_frames.py),
  and all the frames of one flush to one client go to its socket in one
  ``send`` while Twisted has nothing buffered for it. Only what the kernel
  does not take goes through Twisted's ``write``, which buffers it, waits for
  the socket to drain, and pauses the producer when the buffer passes the
  high-water mark. (Twisted's own ``write`` always buffers and waits for the
  next reactor turn: an epoll registration, a wake-up and a deregistration
  per frame, two thirds of the server's time in a profile.) autobahn's own
  frames (the handshake's answer, pings, pongs, closes) take the same path:
  ``attach`` puts it in place of the connection's ``write``. Order holds with
  anything sent through ASGI, since every path writes synchronously and the
  fast one only runs while nothing is queued.

Under daphne, ``send`` is ``functools.partial(server.handle_reply, protocol)``;
``attach`` finds the autobahn protocol there and registers a Twisted
streaming producer on its transport; ``attach_stream`` (server_http.py) does
the same for a streaming HTTP response (SSE); ``still_open`` tells a shutdown
whether a connection's socket is still there. Anywhere else (the test
communicator, another server) ``attach`` returns a ``Transport`` that does
what plain ASGI can.

None of this is daphne's, Twisted's or autobahn's public API. Every private
name the feed uses is in this module and its server_*.py parts, and nowhere
else; server_check.py lists them, checks them against the installed
libraries once per process (``check``) and on each connection's objects, and
when one is gone switches off what needs it with ONE warning naming it,
rather than falling back in silence. ``mode()`` says what is in effect
(/healthz for staff, /metrics); tests/live/test_server_contract.py holds the
installed versions to it.

Compression (PROTOCOL.md "Compression"): daphne never asks autobahn to
accept permessage-deflate, but autobahn reads the accept function from the
connection's protocol object when daphne accepts the handshake, so
``attach`` sets one there; this works however daphne was started (run.py,
deploy/, the tests' plain ``python -m daphne``). Frames written here must then
be compressed as autobahn would: with ``server_no_context_takeover`` each
message stands alone and a quote's compressed frame is shared like its plain
one; with context takeover the connection's own autobahn compressor is used,
so the messages that still go through autobahn's ``sendMessage`` stay on the
same deflate stream, in order.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept

from feeds.core.wire_formats import JSON, WireFormat
from feeds.deliver.server_check import (
    ADAPTER,
    BACK_PRESSURE,
    CLOSE_CODES,
    COMPRESSION,
    FAST_WRITE,
    FEATURES,
    Adapter,
    check,
    mode,
)
from feeds.deliver.server_frames import (
    Framer,
    forget_frames,
    frame,
    frame_of,
    framer,
    text_frame,
)
from feeds.deliver.server_http import (
    HttpStream,
    Producer,
    attach_stream,
    limit_socket_buffer,
)
from feeds.deliver.server_pace import pace_application_checker, slice_timeout_checker
from feeds.deliver.server_shared import share_options

__all__ = [
    "FEATURES",
    "SERVER_SEND",
    "AsgiSend",
    "Framer",
    "HttpStream",
    "Transport",
    "attach",
    "attach_stream",
    "check",
    "direct_writes",
    "forget_frames",
    "frame",
    "frame_of",
    "framer",
    "mode",
    "offer_compression",
    "still_open",
    "text_frame",
]

logger = logging.getLogger(__name__)

# Scope key under which the ASGI app keeps the server's own ``send``.
SERVER_SEND = "marketfeed.server_send"

AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]

# The names feeds/edges/sse.py imported before ``attach_stream``; remove with that import.
_Producer = Producer
_limit_socket_buffer = limit_socket_buffer


class Transport:
    """Plain ASGI: no back-pressure signal, close codes passed as they are."""

    def __init__(self, send: AsgiSend, wire: WireFormat = JSON) -> None:
        self._send = send
        self.wire = wire

    def write_frames(self, texts: list[str], shared: bool) -> bool:
        """Write a frame of each text now, in this connection's format, if this transport can.

        False if not. ``shared``: the same texts go to other clients too (their frames are cached).
        """
        return False

    def watch(self, *, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """Call ``pause`` / ``resume`` when the client's buffer fills / drains."""

    async def close(self, code: int) -> None:
        await self._send({"type": "websocket.close", "code": code})


class DaphneTransport(Transport):
    """daphne's autobahn protocol and its Twisted TCP transport, as far as ``features`` allow."""

    def __init__(
        self,
        send: AsgiSend,
        protocol: Any,
        *,
        buffer_bytes: int,
        socket_buffer_bytes: int,
        wire: WireFormat = JSON,
        compression: str = "off",
        max_message_bytes: int = 0,
        features: frozenset[str] = frozenset({FAST_WRITE, BACK_PRESSURE, CLOSE_CODES, COMPRESSION}),
        adapter: Adapter = ADAPTER,
    ) -> None:
        super().__init__(send, wire)
        self._protocol = protocol
        self._buffer_bytes = buffer_bytes
        self._socket_buffer_bytes = socket_buffer_bytes
        self._features = features
        self._adapter = adapter
        self._fast = FAST_WRITE in features
        if self._fast:
            self._open_state = protocol.STATE_OPEN
            self._gone_states = {protocol.STATE_CLOSING, protocol.STATE_CLOSED}
            if protocol.transport is not None:
                # autobahn's own frames too (the handshake's answer, pings, pongs, closes).
                protocol.transport.write = functools.partial(_write_through, protocol.transport)
        self._framer: Framer | None = None  # known once the handshake has settled compression
        if compression != "off" and COMPRESSION in features:
            offer_compression(protocol, compression, max_message_bytes)

    def write_frames(self, texts: list[str], shared: bool) -> bool:
        if not self._fast:
            return False
        protocol = self._protocol
        state = protocol.state
        if state in self._gone_states:
            # The close frame is out (a shutdown, a limit): nothing may follow it,
            # and autobahn would raise. The texts are dropped, as a reader would.
            return True
        # Only on an open connection with nothing queued inside autobahn, so order holds.
        if state != self._open_state or protocol.send_queue:
            return False
        self._adapter.direct_writes += 1
        _write_through(protocol.transport, self._frames(texts, shared))
        return True

    def _frames(self, texts: list[str], shared: bool) -> bytes:
        """The frames of ``texts`` as this connection negotiated them (format, compression)."""
        if self._framer is None:
            pmce = self._protocol._perMessageCompress if COMPRESSION in self._features else None
            if pmce is not None and not pmce.server_no_context_takeover:
                # Context takeover: one deflate stream per connection, autobahn's own,
                # so the messages that still go through autobahn share it in order.
                opcode, payload = self.wire.opcode, self.wire.payload
                return b"".join(
                    frame(opcode, _deflate_in_context(pmce, payload(t)), compressed=True)
                    for t in texts
                )
            self._framer = framer(self.wire, pmce.server_max_window_bits if pmce is not None else 0)
        return self._framer.frames(texts, shared)

    def watch(self, *, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        if BACK_PRESSURE not in self._features:
            return
        transport = self._protocol.transport
        if transport is None:  # already gone
            return
        try:
            if not self._release_http_channel(transport):
                return
            transport.bufferSize = self._buffer_bytes
            transport.registerProducer(Producer(pause, resume), True)
        except Exception as exc:  # an unexpected transport: keep serving, without back-pressure
            logger.debug("transport producer refused", exc_info=True)
            name = f"twisted tcp.Connection.registerProducer ({type(exc).__name__})"
            self._adapter.lose(name, {BACK_PRESSURE})
            return
        if self._socket_buffer_bytes:
            limit_socket_buffer(transport, self._socket_buffer_bytes)

    def _release_http_channel(self, transport: Any) -> bool:
        """Unregister twisted.web's HTTPChannel, still the producer after daphne's upgrade.

        daphne upgrades the HTTP connection in place, and the HTTPChannel that read
        the handshake stays registered as the transport's producer. Nothing would
        pause our outbox then; worse, a full send buffer would make the channel
        stop *reading* the socket, so a slow reader's pings and requests would sit
        unread. Any other producer is unexpected: leave it, and say so (False).
        """
        producer = transport.producer
        if producer is None:
            return True
        channel_class = self._adapter.libraries.http_channel
        if not isinstance(channel_class, type) or not isinstance(producer, channel_class):
            found = type(producer).__qualname__
            self._adapter.lose(
                f"twisted.web HTTPChannel as the upgraded connection's producer ({found} instead)",
                {BACK_PRESSURE},
            )
            return False
        transport.unregisterProducer()
        return True

    async def close(self, code: int) -> None:
        if code == 1000 or 3000 <= code <= 4999:
            await super().close(code)
        elif CLOSE_CODES in self._features:
            # autobahn's own close path refuses these codes; its frame-level one does not.
            self._protocol.sendCloseFrame(code=code)
        else:
            # Without it autobahn refuses the code: drop the connection, the client reconnects.
            transport = getattr(self._protocol, "transport", None)
            if transport is not None:
                transport.loseConnection()


def _write_through(tcp: Any, data: bytes) -> None:
    """``data`` to the socket now if Twisted holds nothing for it; the rest through Twisted.

    Twisted's own ``write`` always buffers and writes on the next reactor turn,
    after registering the socket for writability; an idle connection's ping
    costs two epoll changes and a wake-up that way, a send this way.
    """
    if (
        type(data) is bytes
        and not tcp.dataBuffer
        and not tcp._tempDataLen
        and tcp.connected
        and not tcp.disconnecting
        and not tcp.TLS  # after a startTLS Twisted must encrypt: its own write path
    ):
        try:
            sent = tcp.socket.send(data)
        except OSError:  # full (EAGAIN), or broken: Twisted's write path finds out which
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    type(tcp).write(tcp, data)


def attach(
    send: AsgiSend,
    *,
    buffer_bytes: int,
    socket_buffer_bytes: int = 0,
    wire: WireFormat = JSON,
    compression: str = "off",
    max_message_bytes: int = 0,
    adapter: Adapter | None = None,
) -> Transport:
    """The transport behind an ASGI ``send``: daphne's when it is there, plain otherwise.

    ``compression`` (settings.FEED_WS_COMPRESSION: off, shared, context) is
    what to accept of a client's permessage-deflate offer; only daphne's
    transport can, and only when attached before the handshake is accepted.
    ``max_message_bytes`` caps what a compressed client message may inflate
    to (0: no cap). Under daphne the connection gets the features its objects
    and the process's check allow (``mode``). ``adapter``: a test's own.
    """
    adapter = adapter or ADAPTER
    protocol = adapter.daphne_target(send)
    if protocol is not None:
        share_options(protocol)  # later connections keep no copy of the factory's options
        daphne_server = send.func.__self__  # found by daphne_target
        pace_application_checker(daphne_server)
        slice_timeout_checker(daphne_server)
        features = adapter.websocket_features(protocol)
        if features:
            return DaphneTransport(
                send,
                protocol,
                buffer_bytes=buffer_bytes,
                socket_buffer_bytes=socket_buffer_bytes,
                wire=wire,
                compression=compression,
                max_message_bytes=max_message_bytes,
                features=features,
                adapter=adapter,
            )
    return Transport(send, wire)


def still_open(send: AsgiSend, *, adapter: Adapter | None = None) -> bool:
    """Whether the daphne connection behind ``send`` still has a connected socket.

    False elsewhere (no socket this process can see). A shutdown waits on it
    so that the 1001 close frames are on the wire before the reactor stops.
    """
    protocol = (adapter or ADAPTER).daphne_target(send)
    transport = getattr(protocol, "transport", None)
    return bool(transport is not None and getattr(transport, "connected", False))


def direct_writes() -> int:
    """How many flushes this process wrote to clients' transports directly (not through ASGI)."""
    return ADAPTER.direct_writes


# --- permessage-deflate (RFC 7692) through autobahn's negotiation ------------------------------


class _DeflateAccept(PerMessageDeflateOfferAccept):  # type: ignore[misc]
    """autobahn's accept, saying ``server_no_context_takeover`` when we impose it.

    autobahn honours ``no_context_takeover`` when it compresses, but names it
    in the response only if the client asked; said, it lets the client drop
    its inflate window for this connection.
    """

    def get_extension_string(self) -> str:
        text: str = super().get_extension_string()
        if self.no_context_takeover and not self.offer.request_no_context_takeover:
            text += "; server_no_context_takeover"
        return text


def offer_compression(protocol: Any, mode: str, max_message_bytes: int) -> None:
    """Let the connection accept permessage-deflate (autobahn settles it when daphne accepts)."""

    def accept(offers: list[Any]) -> _DeflateAccept | None:
        for offer in offers:
            if isinstance(offer, PerMessageDeflateOffer):
                return _DeflateAccept(
                    offer,
                    no_context_takeover=True if mode == "shared" else None,
                    max_message_size=max_message_bytes or None,
                )
        return None

    protocol.perMessageCompressionAccept = accept


def _deflate_in_context(pmce: Any, payload: bytes) -> bytes:
    """One message through the connection's own deflate stream, as autobahn's ``sendMessage``."""
    pmce.start_compress_message()
    data: bytes = pmce.compress_message_data(payload) + pmce.end_compress_message()
    return data
