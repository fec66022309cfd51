"""A WebSocket client on a raw socket, for clients that misbehave on purpose.

The ``websockets`` package reads the socket in the background and answers
pings by itself, so it cannot play a client that stops reading or a peer that
vanished. This one does only what the test says: it reads when asked, answers
a ping only while reading, and can set a small receive buffer so that a
stalled reader shows up as back-pressure at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct

from tests.schema import decode_frame

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


class RawClient:
    def __init__(self, port: int, token: str, *, rcvbuf: int | None = None) -> None:
        self.port, self.token, self.rcvbuf = port, token, rcvbuf
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.close_code: int | None = None

    async def connect(self, *, attempts: int = 1) -> None:
        """Open the socket and do the handshake (token in the query string).

        ``attempts``: try again after a refused or reset handshake, as a client would.
        """
        for attempt in range(attempts):
            try:
                return await self._connect()
            except (ConnectionError, asyncio.IncompleteReadError):
                self.abort()
                if attempt == attempts - 1:
                    raise
            except BaseException:  # a timeout or a cancel: leave no socket open behind us
                self.abort()
                raise

    async def _connect(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
            # A small stream limit too: asyncio buffers up to twice this before it stops reading.
            self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=4096)
        except BaseException:
            sock.close()
            raise
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (
                f"GET /ws/quotes/?token={self.token} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ConnectionError(f"handshake refused: {status!r}")

    def send(self, obj: dict) -> None:
        self._send_frame(TEXT, json.dumps(obj).encode())

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        assert self.writer is not None
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    async def frame(self) -> tuple[int, bytes]:
        """The next frame from the server: (opcode, payload)."""
        assert self.reader is not None
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(size)

    async def messages(self):  # type: ignore[no-untyped-def]
        """Server messages in order, answering pings on the way, until the server closes."""
        while True:
            opcode, payload = await self.frame()
            if opcode == TEXT:
                for msg in decode_frame(payload.decode()):
                    yield msg
            elif opcode == PING:
                self._send_frame(PONG, payload)
            elif opcode == CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return

    async def until(self, pred) -> dict:  # type: ignore[no-untyped-def]
        async for msg in self.messages():
            if pred(msg):
                return msg
        raise ConnectionError(f"closed ({self.close_code}) before the awaited message")

    async def closed(self) -> bool:
        """True once the server has closed the TCP connection (reads what is left)."""
        assert self.reader is not None
        try:
            while await self.reader.read(65536):
                pass
        except (ConnectionError, OSError):
            pass
        return True

    def abort(self) -> None:
        """Drop the socket without a close frame (cleanup at the end of a test)."""
        if self.writer is not None:
            self.writer.transport.abort()
            self.reader = self.writer = None
