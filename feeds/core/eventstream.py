"""The text/event-stream side of the quote stream (PROTOCOL.md, "Server-Sent Events"). Plain Python.

What an SSE request asks (``?symbols=A,B&throttle_ms=N``), how each server
message becomes one SSE event (``event:`` naming the message type, ``data:``
holding the very JSON text, ``id: SYMBOL:seq`` on quotes and snapshots so a
browser's reconnect sends it back as ``Last-Event-ID``), and the refusal a
request gets before the stream starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from feeds.core import protocol
from feeds.core.protocol import ErrorCode

_TYPE_PREFIX = '{"type":"'
_SYMBOL_FIELD = '"symbol":"'


class Refusal(Exception):
    """A request refused before the stream starts: an HTTP status and a JSON body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str = "",
        symbols: tuple[str, ...] = (),
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.code = status, detail, code
        self.symbols, self.headers = symbols, headers

    def body(self) -> bytes:
        obj: dict[str, Any] = {"detail": self.detail}
        if self.code:
            obj["code"] = self.code
        if self.symbols:
            obj["symbols"] = list(self.symbols)
        return json.dumps(obj).encode()


# The HTTP status of each error a stream's symbols can be refused with.
REFUSAL_STATUS = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNKNOWN_SYMBOL: 400,
    ErrorCode.TOO_MANY_SYMBOLS: 400,
    ErrorCode.NOT_ENTITLED: 403,
}


def refusal_of(exc: protocol.ProtocolError) -> Refusal:
    """The HTTP refusal of a protocol error met while checking a stream's symbols."""
    return Refusal(
        REFUSAL_STATUS.get(exc.code, 400), exc.message, code=exc.code, symbols=exc.symbols
    )


@dataclass(frozen=True, slots=True)
class StreamParams:
    """What the query string asks: symbols (``wildcard``: ``*`` was among them), a throttle."""

    symbols: tuple[str, ...]
    wildcard: bool = False
    throttle_ms: int = 0

    def as_subscribe(self) -> protocol.Subscribe:
        """The same request as a WebSocket ``subscribe``: one session rule checks both."""
        return protocol.Subscribe(
            symbols=self.symbols, wildcard=self.wildcard, throttle_ms=self.throttle_ms
        )


def parse_params(query_string: bytes) -> StreamParams:
    """``?symbols=A,B&throttle_ms=N`` as ``StreamParams``; ``Refusal`` (400) when it is bad."""
    query = parse_qs(query_string.decode("latin-1"))
    names = [s.strip().upper() for raw in query.get("symbols", ()) for s in raw.split(",")]
    unique = tuple(dict.fromkeys(s for s in names if s))
    wildcard = protocol.WILDCARD in unique
    symbols = tuple(s for s in unique if s != protocol.WILDCARD)
    if not symbols and not wildcard:
        raise Refusal(
            400,
            "'symbols' must name at least one symbol (comma-separated)",
            code=ErrorCode.BAD_REQUEST,
        )
    bad = tuple(s for s in symbols if not protocol.is_symbol(s))
    if bad:
        shown = ", ".join(s[:40] for s in bad[:20])
        raise Refusal(
            400, f"unknown symbol(s): {shown}", code=ErrorCode.UNKNOWN_SYMBOL, symbols=bad
        )
    return StreamParams(symbols, wildcard, _throttle_ms(query.get("throttle_ms", ["0"])[-1]))


def _throttle_ms(raw: str) -> int:
    value = int(raw) if raw.strip().isdigit() else -1
    if not 0 <= value <= protocol.MAX_THROTTLE_MS:
        raise Refusal(
            400,
            f"'throttle_ms' must be an integer from 0 to {protocol.MAX_THROTTLE_MS}",
            code=ErrorCode.BAD_REQUEST,
        )
    return value


def event(text: str) -> str:
    """The SSE event of one server message (a JSON object text): id, event and data lines.

    Read from the layout ``feeds.core.protocol`` writes (type first, no raw
    newlines); anything else is decoded, so the event is right either way.
    """
    start = len(_TYPE_PREFIX)
    kind = text[start : text.find('"', start)] if text.startswith(_TYPE_PREFIX) else ""
    if not kind or "\n" in text:
        return _event_of_object(text)
    if kind in ("quote", "snapshot"):
        start = text.find(_SYMBOL_FIELD) + len(_SYMBOL_FIELD)
        symbol = text[start : text.find('"', start)]
        return f"id: {symbol}:{protocol.quote_seq(text)}\nevent: {kind}\ndata: {text}\n\n"
    return f"event: {kind}\ndata: {text}\n\n"


def _event_of_object(text: str) -> str:
    obj = json.loads(text)
    kind = obj.get("type", "message")
    head = f"id: {obj['symbol']}:{obj['seq']}\n" if kind in ("quote", "snapshot") else ""
    return f"{head}event: {kind}\ndata: {json.dumps(obj, separators=(',', ':'))}\n\n"
