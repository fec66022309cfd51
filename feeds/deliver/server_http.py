"""A streaming HTTP response (SSE) as the server underneath has it, and Twisted's producer bits.

Under daphne, an HTTP ``send`` is ``functools.partial(server.handle_reply,
request)`` with twisted.web's request behind it. ``attach_stream`` finds it
there: the stream then writes to the request at once (one write per flush,
no trip through daphne's reply handler), and a Twisted streaming producer on
the request relays the TCP transport's pause and resume (through the
request's HTTPChannel) to the caller, so a slow reader is conflated rather
than buffered. Anywhere else ``HttpStream`` does what plain ASGI can: nothing
(``write`` says False, and the caller sends through ASGI).

Which pieces of daphne and Twisted this needs is in feeds/deliver/server_check.py.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from feeds.deliver.server_check import ADAPTER, STREAM_BACK_PRESSURE, STREAM_WRITE, Adapter

logger = logging.getLogger(__name__)


class Producer:
    """A Twisted streaming producer that only relays pause and resume."""

    __slots__ = ("pauseProducing", "resumeProducing")

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self.pauseProducing = pause
        self.resumeProducing = resume

    def stopProducing(self) -> None:
        """The connection is gone; the application hears of it as a disconnect."""


def limit_socket_buffer(transport: Any, size: int) -> None:
    """Cap the kernel send buffer, so a stalled reader shows up as back-pressure quickly."""
    try:
        handle = transport.getHandle()
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    except (AttributeError, OSError):
        pass


class HttpStream:
    """Plain ASGI: no direct write, no back-pressure signal."""

    def write(self, data: bytes) -> bool:
        """Write ``data`` to the client now, if this server can: True; False if not.

        True also when the response is already finished: the data is dropped,
        as a reader that left would.
        """
        return False

    def watch(self, *, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """Call ``pause`` / ``resume`` when the client's buffer fills / drains."""

    def release(self) -> None:
        """Stop relaying pause and resume (idempotent)."""


class DaphneHttpStream(HttpStream):
    """twisted.web's request behind daphne's ``send``."""

    def __init__(
        self,
        request: Any,
        features: frozenset[str],
        *,
        buffer_bytes: int,
        socket_buffer_bytes: int,
        adapter: Adapter,
    ) -> None:
        self._request = request
        self._features = features
        self._buffer_bytes = buffer_bytes
        self._socket_buffer_bytes = socket_buffer_bytes
        self._adapter = adapter
        self._registered = False

    def write(self, data: bytes) -> bool:
        if STREAM_WRITE not in self._features:
            return False
        request = self._request
        if not request.finished and request.channel is not None:
            request.write(data)
            self._adapter.direct_writes += 1
        return True

    def watch(self, *, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        request = self._request
        channel = request.channel
        if STREAM_BACK_PRESSURE not in self._features or channel is None or self._registered:
            return
        try:
            transport = channel.transport
            transport.bufferSize = self._buffer_bytes
            request.registerProducer(Producer(pause, resume), True)
        except Exception as exc:  # an unexpected request: keep serving, without back-pressure
            logger.debug("stream producer refused", exc_info=True)
            name = f"twisted.web Request.registerProducer ({type(exc).__name__})"
            self._adapter.lose(name, {STREAM_BACK_PRESSURE})
            return
        self._registered = True
        if self._socket_buffer_bytes:
            limit_socket_buffer(transport, self._socket_buffer_bytes)
        if channel._waitingForTransport:
            pause()  # already full before we registered: no pause would come

    def release(self) -> None:
        if not self._registered:
            return
        self._registered = False
        request = self._request
        if request.producer is not None and request.channel is not None:
            request.unregisterProducer()


def attach_stream(
    send: Any, *, buffer_bytes: int, socket_buffer_bytes: int, adapter: Adapter | None = None
) -> HttpStream:
    """The streaming response behind an HTTP ``send``: daphne's request when it is there.

    ``buffer_bytes``: Twisted's buffer for this client above which ``watch``
    pauses (settings.FEED_WRITE_BUFFER_BYTES); ``socket_buffer_bytes``: the
    kernel send buffer's cap (settings.FEED_SOCKET_BUFFER_BYTES, 0: leave it).
    ``adapter``: a test's own, instead of the process's.
    """
    adapter = adapter or ADAPTER
    request = adapter.daphne_target(send)
    if request is None:
        return HttpStream()
    features = adapter.stream_features(request)
    if not features:
        return HttpStream()
    return DaphneHttpStream(
        request, features, buffer_bytes=buffer_bytes, socket_buffer_bytes=socket_buffer_bytes,
        adapter=adapter,
    )
