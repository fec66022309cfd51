"""What the consumer needs from the WebSocket server underneath it.

ASGI gives an application ``send`` and nothing else, but a market data feed
needs two things it does not carry:

- back-pressure: to conflate for a slow client *before* the kernel and the
  server buffer seconds of quotes, the consumer must know when the client's
  transport buffer is full (PITFALLS.md: loopback autotunes a send buffer up
  to ~4 MiB);
- close codes 1001 and 1009: autobahn's ``sendClose`` (daphne) refuses codes
  other than 1000 and 3000-4999 and turns them into 1011.

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


class Transport:
    """Plain ASGI: no back-pressure signal, close codes passed as they are."""

    def __init__(self, send: AsgiSend) -> None:
        self._send = send

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

    def watch(self, *, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        transport = getattr(self._protocol, "transport", None)
        if transport is None or getattr(transport, "producer", None) is not None:
            return
        try:
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
        if hasattr(protocol, "sendCloseFrame") and hasattr(protocol, "transport"):
            return DaphneTransport(
                send, protocol, buffer_bytes=buffer_bytes, socket_buffer_bytes=socket_buffer_bytes
            )
    return Transport(send)
