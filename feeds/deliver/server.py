"""What the consumer needs from the WebSocket server underneath it.

ASGI gives an application ``send`` and nothing else, but a market data feed
needs two things it does not carry:

- back-pressure: to conflate for a slow client *before* the kernel and the
  server buffer seconds of quotes, the consumer must know when the client's
  transport buffer is full (PITFALLS.md: loopback autotunes a send buffer up
  to ~4 MiB);
- close codes 1001 and 1009: autobahn's ``sendClose`` (daphne) refuses codes
  other than 1000 and 3000-4999 and turns them into 1011;
- speed: a quote goes to many clients as the very same text. Through ASGI
  each copy would pass the session wrapper, daphne's reply handler and
  autobahn's generic ``sendMessage``, and be encoded and framed again. Here
  the frame is built once per quote and wire format (``Framer.shared``,
  cached until the hub's next flush pass), and all the frames of one flush to one client go to its
  socket in one ``send`` while Twisted has nothing buffered for it. Only what
  the kernel does not take goes through Twisted's ``write``, which buffers it,
  waits for the socket to drain, and pauses the producer when the buffer
  passes the high-water mark. (Twisted's own ``write`` always buffers and
  waits for the next reactor turn: an epoll registration, a wake-up and a
  deregistration per frame, two thirds of the server's time in a profile.)
  Order holds with anything sent through ASGI, since every path writes
  synchronously and the fast one only runs while nothing is queued.

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

Under daphne, ``send`` is ``functools.partial(server.handle_reply, protocol)``;
``attach`` finds the autobahn protocol there and registers a Twisted
streaming producer on its transport. Anywhere else (the test communicator,
another server) it returns a ``Transport`` that does what plain ASGI can.
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept

from feeds.core.wire_formats import JSON, OPCODE_TEXT, WireFormat, message_compressor

logger = logging.getLogger(__name__)

# Scope key under which the ASGI app keeps the server's own ``send``.
SERVER_SEND = "marketfeed.server_send"

AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]


class Framer:
    """The WebSocket frames of one wire format and compression (server side: unmasked).

    ``shared`` caches a frame until the hub's next flush pass, for texts that
    go to many clients (a quote): the conversion to MessagePack and the
    compression are then made once per process per quote, not per subscriber.
    """

    __slots__ = ("_cache", "_compress", "_opcode", "_payload")

    def __init__(self, wire: WireFormat, compress: Callable[[bytes], bytes] | None) -> None:
        self._cache: dict[str, bytes] = {}
        self._payload = wire.payload
        self._opcode = wire.opcode
        self._compress = compress

    def own(self, text: str) -> bytes:
        """The frame of a text of this client's only (a batch, a reply)."""
        payload = self._payload(text)
        if self._compress is None:
            return frame(self._opcode, payload)
        return frame(self._opcode, self._compress(payload), compressed=True)

    def shared(self, text: str) -> bytes:
        """The frame of a text other clients get too, built once per flush pass."""
        data = self._cache.get(text)
        if data is None:
            data = self._cache[text] = self.own(text)
        return data

    def frames(self, texts: list[str], shared: bool) -> bytes:
        build = self.shared if shared else self.own
        return build(texts[0]) if len(texts) == 1 else b"".join(map(build, texts))

    def forget(self) -> None:
        self._cache.clear()


# (format name, server window bits when compressed without context takeover, else 0)
_framers: dict[tuple[str, int], Framer] = {}


def framer(wire: WireFormat, window_bits: int = 0) -> Framer:
    """The process's framer of ``wire``, deflated per message with ``window_bits`` when not 0."""
    key = (wire.name, window_bits)
    found = _framers.get(key)
    if found is None:
        compress = message_compressor(window_bits) if window_bits else None
        found = _framers[key] = Framer(wire, compress)
    return found


def frame_of(text: str) -> bytes:
    """The JSON text frame of ``text``, built once per flush pass."""
    return framer(JSON).shared(text)


def forget_frames() -> None:
    """Drop the frames of the last flush pass (the hub calls it after each one)."""
    for each in _framers.values():
        each.forget()


def frame(opcode: int, payload: bytes, *, compressed: bool = False) -> bytes:
    """RFC 6455 section 5.2: FIN, RSV1 if compressed (RFC 7692), the opcode, the length."""
    first = 0x80 | (0x40 if compressed else 0) | opcode
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return bytes((first, 126)) + size.to_bytes(2, "big") + payload
    return bytes((first, 127)) + size.to_bytes(8, "big") + payload


def text_frame(payload: bytes) -> bytes:
    """An uncompressed text frame of ``payload`` (UTF-8)."""
    return frame(OPCODE_TEXT, payload)


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


class _Producer:
    """A Twisted streaming producer that only relays pause and resume."""

    __slots__ = ("pauseProducing", "resumeProducing")

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self.pauseProducing = pause
        self.resumeProducing = resume

    def stopProducing(self) -> None:
        """The connection is gone; the consumer hears of it as a disconnect."""


class DaphneTransport(Transport):
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
    ) -> None:
        super().__init__(send, wire)
        self._protocol = protocol
        self._buffer_bytes = buffer_bytes
        self._socket_buffer_bytes = socket_buffer_bytes
        self._open_state = getattr(protocol, "STATE_OPEN", None)
        self._gone_states = {getattr(protocol, n, n) for n in ("STATE_CLOSING", "STATE_CLOSED")}
        self._framer: Framer | None = None  # known once the handshake has settled compression
        if compression != "off":
            offer_compression(protocol, compression, max_message_bytes)

    def write_frames(self, texts: list[str], shared: bool) -> bool:
        protocol = self._protocol
        if protocol.state in self._gone_states:
            # The close frame is out (a shutdown, a limit): nothing may follow it,
            # and autobahn would raise. The texts are dropped, as a reader would.
            return True
        # Only on an open connection with nothing queued inside autobahn, so order holds.
        if protocol.state != self._open_state or protocol.send_queue:
            return False
        data = self._frames(texts, shared)
        tcp = protocol.transport
        if (
            not tcp.dataBuffer
            and not tcp._tempDataLen
            and tcp.connected
            and not tcp.disconnecting
            and not getattr(tcp, "TLS", True)  # a TLS transport must encrypt: Twisted's path
        ):
            try:
                sent = tcp.socket.send(data)
            except OSError:  # full (EAGAIN), or broken: Twisted's write path finds out which
                sent = 0
            if sent == len(data):
                return True
            data = data[sent:]
        tcp.write(data)
        return True

    def _frames(self, texts: list[str], shared: bool) -> bytes:
        """The frames of ``texts`` as this connection negotiated them (format, compression)."""
        if self._framer is None:
            pmce = getattr(self._protocol, "_perMessageCompress", None)
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
        transport = getattr(self._protocol, "transport", None)
        if transport is None:
            return
        try:
            _release_http_channel(transport)
            transport.bufferSize = self._buffer_bytes
            transport.registerProducer(_Producer(pause, resume), True)
        except Exception:  # an unexpected transport: keep serving, without back-pressure
            logger.warning("no back-pressure for this connection's transport", exc_info=True)
            return
        if self._socket_buffer_bytes:
            _limit_socket_buffer(transport, self._socket_buffer_bytes)

    async def close(self, code: int) -> None:
        if code == 1000 or 3000 <= code <= 4999:
            await super().close(code)
        else:
            # autobahn's own close path refuses these codes; its frame-level one does not.
            self._protocol.sendCloseFrame(code=code)


def _release_http_channel(transport: Any) -> None:
    """Unregister twisted.web's HTTPChannel, still the producer after daphne's upgrade.

    daphne upgrades the HTTP connection in place, and the HTTPChannel that read
    the handshake stays registered as the transport's producer. Nothing would
    pause our outbox then; worse, a full send buffer would make the channel
    stop *reading* the socket, so a slow reader's pings and requests would sit
    unread. Any other producer is unexpected: leave it, and say so.
    """
    from twisted.web.http import HTTPChannel

    producer = transport.producer
    if producer is None:
        return
    if not isinstance(producer, HTTPChannel):
        raise RuntimeError(f"the transport already has a producer: {producer!r}")
    transport.unregisterProducer()


def _limit_socket_buffer(transport: Any, size: int) -> None:
    """Cap the kernel send buffer, so a stalled reader shows up as back-pressure quickly."""
    try:
        handle = transport.getHandle()
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    except (AttributeError, OSError):
        pass


def attach(
    send: AsgiSend,
    *,
    buffer_bytes: int,
    socket_buffer_bytes: int = 0,
    wire: WireFormat = JSON,
    compression: str = "off",
    max_message_bytes: int = 0,
) -> Transport:
    """The transport behind an ASGI ``send``: daphne's when it is there, plain otherwise.

    ``compression`` (settings.FEED_WS_COMPRESSION: off, shared, context) is
    what to accept of a client's permessage-deflate offer; only daphne's
    transport can, and only when attached before the handshake is accepted.
    ``max_message_bytes`` caps what a compressed client message may inflate
    to (0: no cap).
    """
    if isinstance(send, functools.partial) and send.args:
        protocol = send.args[0]
        needed = ("sendCloseFrame", "transport", "state", "send_queue")
        if all(hasattr(protocol, a) for a in needed):
            return DaphneTransport(
                send,
                protocol,
                buffer_bytes=buffer_bytes,
                socket_buffer_bytes=socket_buffer_bytes,
                wire=wire,
                compression=compression,
                max_message_bytes=max_message_bytes,
            )
    return Transport(send, wire)


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
