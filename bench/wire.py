"""A lean WebSocket client connection: websockets' Sans-I/O protocol on an asyncio Protocol.

Why: the load generator shares the machine with the server it measures, and
with ``--pin`` it has one core. The asyncio API of ``websockets`` costs a
task wake-up, a future and the message assembler per frame, which capped
one client process near 80,000 frames/s here (with p50 latency climbing from
client queueing long before that), below what the reference server can send.
This connection feeds bytes from ``data_received`` straight into
``websockets.client.ClientProtocol`` (the same handshake, framing, ping/pong
and close handling) and hands each text frame to a callback in the same call,
so the per-frame cost is the library's parser and nothing else.

``recv()`` exists for the set-up phase (``welcome``, ``subscribed``); once
``stream(callback)`` is called every later frame goes to the callback.

After the handshake's HTTP response (up to its blank line, which the
Sans-I/O protocol reads), whole unfragmented text frames are cut out of the
bytes here (a server's frames are unmasked: a two-byte header, an optional
16- or 64-bit length, the payload) and everything else (pings, close,
fragments) is handed to the protocol a whole frame at a time, so both always
agree where a frame starts. websockets' generator-based parser was most of
the client's time per frame; a saturated client would hide the server's
latency behind its own.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

MAX_HEAD_BYTES = 65_536  # a handshake response longer than this is not one

class LeanConnection(asyncio.Protocol):
    def __init__(self, url: str, max_size: int) -> None:
        self.proto = ClientProtocol(parse_uri(url), max_size=max_size)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._inbox: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._on_text: Callable[[str], None] | None = None
        self._parts: list[bytes] = []
        self._head: bytes | None = b""  # the HTTP response so far; None once it is read
        self._rest = b""  # the start of a frame not yet complete

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.proto.send_request(self.proto.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._head is None:
            self._cut_frames(data)
            return
        head = self._head + data
        end = head.find(b"\r\n\r\n")
        if end < 0 and len(head) < MAX_HEAD_BYTES:
            self._head = head
            return
        self._head = None
        if end < 0:  # no end of headers in sight: the protocol reports what is wrong
            self._to_protocol(head)
            return
        end += 4
        self._to_protocol(head[:end])
        if self.proto.handshake_exc is not None:  # refused: a body, not frames
            self._to_protocol(head[end:])
        elif end < len(head):
            self._cut_frames(head[end:])

    def _to_protocol(self, data: bytes) -> None:
        proto = self.proto
        proto.receive_data(data)
        for event in proto.events_received():
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Response):
                self._handshake_done(event)
        self._flush()

    def _cut_frames(self, data: bytes) -> None:
        buf = self._rest + data if self._rest else data
        end, pos = len(buf), 0
        while end - pos >= 2:
            size, head = buf[pos + 1], 2
            if size & 0x80:  # masked: not from a server; let the protocol fail it
                self._rest = b""
                self._to_protocol(buf[pos:])
                return
            if size == 126:
                if end - pos < 4:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif size == 127:
                if end - pos < 10:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            stop = pos + head + size
            if stop > end:
                break
            if buf[pos] == 0x81:  # FIN + text
                self._text(buf[pos + head : stop].decode())
            else:
                self._to_protocol(buf[pos:stop])
            pos = stop
        self._rest = buf[pos:]

    def eof_received(self) -> bool | None:
        self.proto.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            error = exc or ConnectionClosed(self.proto.close_rcvd, self.proto.close_sent)
            self.opened.set_exception(self.proto.handshake_exc or error)
        if not self.closed.done():
            self.closed.set_result(None)
        self._wake()

    # --- frames -------------------------------------------------------------------------

    def _handshake_done(self, response: Response) -> None:
        if self.opened.done():
            return
        if self.proto.handshake_exc is not None:
            self.opened.set_exception(self.proto.handshake_exc)
        else:
            self.opened.set_result(None)

    def _frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.TEXT or (frame.opcode is Opcode.CONT and self._parts):
            self._parts.append(bytes(frame.data))
            if not frame.fin:
                return
            text = b"".join(self._parts).decode()
            self._parts = []
            self._text(text)
        elif frame.opcode is Opcode.CLOSE:
            self._wake()

    def _text(self, text: str) -> None:
        if self._on_text is not None:
            self._on_text(text)
        else:
            self._inbox.append(text)
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data in self.proto.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if self.proto.close_expected():
            transport.close()

    # --- the API the load generator uses ------------------------------------------------------

    async def recv(self) -> str:
        while not self._inbox:
            if self.closed.done() or self.proto.close_rcvd is not None:
                raise ConnectionClosed(self.proto.close_rcvd, self.proto.close_sent)
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._inbox.popleft()

    def send(self, text: str) -> None:
        self.proto.send_text(text.encode())
        self._flush()

    def stream(self, on_text: Callable[[str], None]) -> None:
        """From now on every text frame goes to ``on_text`` (frames already queued first)."""
        while self._inbox:
            on_text(self._inbox.popleft())
        self._on_text = on_text

    async def close(self) -> None:
        if self.transport is None or self.closed.done():
            return
        try:
            self.proto.send_close(1000)
            self._flush()
        except Exception:  # already closing: just drop the socket below
            pass
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), 2.0)
        except TimeoutError:
            self.abort()

    def ended_by(self) -> str:
        """How the connection ended: ``closed: <code>`` from the server's close frame, or
        ``dropped`` (no close frame: a reset, or the server went away)."""
        close = self.proto.close_rcvd
        return f"closed: {close.code}" if close is not None else "dropped"

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def lean_connect(
    url: str, *, open_timeout_s: float, max_size: int, rcvbuf: int = 0
) -> LeanConnection:
    """Open a TCP connection to ``url``'s host and complete the WebSocket handshake.

    ``rcvbuf``: the socket's receive buffer in bytes, set before the SYN so the
    window is sized by it (0: the kernel's autotuning).
    """
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()

    async def handshake() -> LeanConnection:
        sock = None
        if rcvbuf:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (uri.host, uri.port))
            except BaseException:
                sock.close()
                raise
        _, conn = await loop.create_connection(
            lambda: LeanConnection(url, max_size),
            *(() if sock else (uri.host, uri.port)),
            sock=sock,
        )
        await conn.opened
        return conn

    return await asyncio.wait_for(handshake(), open_timeout_s)
