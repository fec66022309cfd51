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
  the frame is built once per quote (``frame_of``, cached until the hub's
  next flush pass), and all the frames of one flush to one client go to its
  socket in one ``send`` while Twisted has nothing buffered for it. Only what
  the kernel does not take goes through Twisted's ``write``, which buffers it,
  waits for the socket to drain, and pauses the producer when the buffer
  passes the high-water mark. (Twisted's own ``write`` always buffers and
  waits for the next reactor turn: an epoll registration, a wake-up and a
  deregistration per frame, two thirds of the server's time in a profile.)
  Order holds with anything sent through ASGI, since every path writes
  synchronously and the fast one only runs while nothing is queued.

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

logger = logging.getLogger(__name__)

# Scope key under which the ASGI app keeps the server's own ``send``.
SERVER_SEND = "marketfeed.server_send"

AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]


_frames: dict[str, bytes] = {}


def frame_of(text: str) -> bytes:
    """The WebSocket text frame of ``text`` (server side: unmasked), built once per flush pass."""
    frame = _frames.get(text)
    if frame is None:
        frame = _frames[text] = text_frame(text.encode("utf-8"))
    return frame


def forget_frames() -> None:
    """Drop the frames of the last flush pass (the hub calls it after each one)."""
    _frames.clear()


def text_frame(payload: bytes) -> bytes:
    """RFC 6455 section 5.2: FIN and opcode 1, then the length in 7, 16 or 64 bits."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


class Transport:
    """Plain ASGI: no back-pressure signal, close codes passed as they are."""

    def __init__(self, send: AsgiSend) -> None:
        self._send = send

    def write_frames(self, texts: list[str], shared: bool) -> bool:
        """Write a text frame of each text now, if this transport can; False if not.

        ``shared``: the same texts go to other clients too (their frames are cached).
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
        self, send: AsgiSend, protocol: Any, *, buffer_bytes: int, socket_buffer_bytes: int
    ) -> None:
        super().__init__(send)
        self._protocol = protocol
        self._buffer_bytes = buffer_bytes
        self._socket_buffer_bytes = socket_buffer_bytes
        self._open_state = getattr(protocol, "STATE_OPEN", None)
        self._gone_states = {getattr(protocol, n, n) for n in ("STATE_CLOSING", "STATE_CLOSED")}

    def write_frames(self, texts: list[str], shared: bool) -> bool:
        protocol = self._protocol
        if protocol.state in self._gone_states:
            # The close frame is out (a shutdown, a limit): nothing may follow it,
            # and autobahn would raise. The texts are dropped, as a reader would.
            return True
        # Only on an open connection with nothing queued inside autobahn, so order holds.
        if protocol.state != self._open_state or protocol.send_queue:
            return False
        if shared:
            data = frame_of(texts[0]) if len(texts) == 1 else b"".join(map(frame_of, texts))
        else:
            data = b"".join(text_frame(text.encode("utf-8")) for text in texts)
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


def attach(send: AsgiSend, *, buffer_bytes: int, socket_buffer_bytes: int = 0) -> Transport:
    """The transport behind an ASGI ``send``: daphne's when it is there, plain otherwise."""
    if isinstance(send, functools.partial) and send.args:
        protocol = send.args[0]
        if all(hasattr(protocol, a) for a in ("sendCloseFrame", "transport", "state", "send_queue")):
            return DaphneTransport(
                send, protocol, buffer_bytes=buffer_bytes, socket_buffer_bytes=socket_buffer_bytes
            )
    return Transport(send)
