"""What daphne hands the adapter, built from the installed Twisted without a running server.

The transport is Twisted's real TCP connection on a real loopback socket; only
the reactor is a stand-in (it records which descriptors want to write: a
non-empty set means Twisted holds bytes for the socket). daphne's server and
autobahn's protocol are reduced to what a ``send`` and the adapter see of
them, their constants taken from the installed autobahn.
"""

from __future__ import annotations

import dataclasses
import socket
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet import tcp

from feeds.deliver.server_check import Adapter, Libraries


class Reactor:
    """The reactor calls a Twisted descriptor makes while it writes."""

    def __init__(self) -> None:
        self.writers: set[Any] = set()

    def addWriter(self, descriptor: Any) -> None:
        self.writers.add(descriptor)

    def removeWriter(self, descriptor: Any) -> None:
        self.writers.discard(descriptor)

    def addReader(self, descriptor: Any) -> None:
        pass

    def removeReader(self, descriptor: Any) -> None:
        pass


@pytest.fixture(name="tcp_pair")
def tcp_pair_fixture() -> Iterator[tuple[tcp.Server, socket.socket]]:
    """Twisted's side of a loopback TCP connection, and the client's socket (non-blocking)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        sock, address = listener.accept()
    connection = tcp.Server(sock, None, address, None, 0, Reactor())
    connection.connected = 1
    peer.setblocking(False)
    yield connection, peer
    sock.close()
    peer.close()


def received(peer: socket.socket) -> bytes:
    """All the peer's socket holds now."""
    data = b""
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


class Server:
    """daphne's server as its ``send`` shows it: ``partial(server.handle_reply, connection)``."""

    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = []

    async def handle_reply(self, connection: Any, message: dict[str, Any]) -> None:
        self.replies.append(message)


class Protocol:
    """autobahn's WebSocket protocol, open, as far as the adapter reads it."""

    STATE_CLOSED = WebSocketProtocol.STATE_CLOSED
    STATE_CONNECTING = WebSocketProtocol.STATE_CONNECTING
    STATE_CLOSING = WebSocketProtocol.STATE_CLOSING
    STATE_OPEN = WebSocketProtocol.STATE_OPEN

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.state = self.STATE_OPEN
        self.send_queue: deque[Any] = deque()
        self._perMessageCompress = None
        self.perMessageCompressionAccept = None
        self.close_frames: list[int | None] = []
        self.sendCloseFrame = self._send_close_frame  # on the instance: a test may take it away

    def _send_close_frame(
        self, code: int | None = None, reasonUtf8: bytes | None = None, isReply: bool = False
    ) -> None:
        self.close_frames.append(code)
        self.state = self.STATE_CLOSING


def adapter(*, daphne: bool = True) -> Adapter:
    """An adapter of the installed libraries with ``Server`` as daphne's; daphne serving or not."""
    libraries = dataclasses.replace(Libraries.installed(), daphne_server=Server)
    return Adapter(libraries, daphne_running=lambda: daphne)
