"""An in-memory stand-in for a websockets client connection, for the client's unit tests only.

It speaks the connection object's interface (``recv``, ``send``, ``close``)
and nothing of the protocol: each test scripts the server's side itself.
Live tests use a real daphne instead.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Close

from tests.timeouts import timeout


class FakeConnection:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers
        self._incoming: asyncio.Queue[Any] = asyncio.Queue()
        self._sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed = asyncio.Event()

    def push(self, *messages: dict[str, Any]) -> None:
        """The server sends these, one frame each (a list: one batched frame)."""
        for message in messages:
            self._incoming.put_nowait(json.dumps(message))

    def push_raw(self, data: str | bytes) -> None:
        self._incoming.put_nowait(data)

    def hang_up(self, code: int | None, reason: str = "") -> None:
        """The server closes with ``code`` (None: the TCP connection just drops)."""
        self._incoming.put_nowait(Close(code, reason) if code is not None else None)

    async def request(self) -> dict[str, Any]:
        """The next request the client sent."""
        return await asyncio.wait_for(self._sent.get(), timeout())

    async def recv(self) -> str | bytes:
        item = await self._incoming.get()
        if isinstance(item, Close):
            self.closed.set()
            raise (ConnectionClosedOK if item.code == 1000 else ConnectionClosedError)(item, None)
        if item is None:
            self.closed.set()
            raise ConnectionClosedError(None, None)
        return item

    async def send(self, text: str) -> None:
        if self.closed.is_set():
            raise ConnectionClosedOK(Close(1000, ""), None)
        self._sent.put_nowait(json.loads(text))

    async def close(self) -> None:
        if not self.closed.is_set():
            self.hang_up(1000)


class FakeDialer:
    """The ``connect`` callable: each dial yields a new FakeConnection, or an error queued up."""

    def __init__(self) -> None:
        self._dials: asyncio.Queue[FakeConnection] = asyncio.Queue()
        self.failures: list[BaseException] = []
        self.attempts = 0

    async def __call__(self, url: str, *, additional_headers: dict[str, str]) -> FakeConnection:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        conn = FakeConnection(url, dict(additional_headers))
        self._dials.put_nowait(conn)
        return conn

    async def connection(self) -> FakeConnection:
        """The next connection the client opens."""
        return await asyncio.wait_for(self._dials.get(), timeout())


def welcome(epoch: str = "e1", heartbeat_s: int = 15) -> dict[str, Any]:
    return {"type": "welcome", "user": "u", "heartbeat_s": heartbeat_s, "max_symbols": 1000,
            "protocol": 1, "epoch": epoch}


def quote(symbol: str, seq: int, **extra: Any) -> dict[str, Any]:
    price = 100.0 + seq / 100
    return {"type": "quote", "symbol": symbol, "seq": seq, "bid": price, "ask": price + 0.02,
            "bid_size": 100, "ask_size": 200, "last": price + 0.01, "last_size": 10,
            "volume": 1000 + seq, "ts": 1_764_000_000_000_000 + seq, **extra}


def snapshot(symbol: str, seq: int, epoch: str = "e1") -> dict[str, Any]:
    return {**quote(symbol, seq), "type": "snapshot", "epoch": epoch}
