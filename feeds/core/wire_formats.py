"""Wire formats of the quote stream: JSON text frames, or the same messages as MessagePack.

A connection picks its format once, with ``?format=`` on the WebSocket URL
(PROTOCOL.md "MessagePack frames"). Every server message is built as JSON
text in one place (feeds/core/protocol.py) and the ticker encodes a quote once;
a MessagePack connection gets that text converted (``to_msgpack``), and the
transport caches the converted frame of a shared text for the flush pass, so
a quote is converted once per process, not once per subscriber.

Plain Python and msgpack only: no Django here.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import msgpack

from feeds.core import parsing, protocol
from feeds.core.protocol import ErrorCode, ProtocolError

FORMAT_PARAMETER = "format"
OPCODE_TEXT = 1
OPCODE_BINARY = 2
# The range of an integer MessagePack can carry (int 64 down, uint 64 up).
_MSGPACK_INT_MIN = -(2**63)
_MSGPACK_INT_MAX = 2**64 - 1


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def to_msgpack(text: str) -> bytes:
    """The MessagePack encoding of a server message's JSON text (an object, or a batch array).

    JSON numbers keep their kind: prices become float 64 (the very double a
    JSON parser reads), integers stay integers. What MessagePack cannot hold
    as such (only ever echoed client input: an ``id`` beyond 64 bits, a lone
    surrogate in a named symbol) is made safe rather than failing the send.
    """
    value = json.loads(text)
    try:
        return msgpack.packb(value)  # type: ignore[no-any-return]
    except (OverflowError, UnicodeEncodeError):
        return msgpack.packb(_safe(value))  # type: ignore[no-any-return]


def _safe(value: Any) -> Any:
    """``value`` with out-of-range integers as decimal strings and unencodable text escaped."""
    if isinstance(value, dict):
        return {_safe(k): _safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_safe(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return value if _MSGPACK_INT_MIN <= value <= _MSGPACK_INT_MAX else str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


@dataclass(frozen=True, slots=True)
class WireFormat:
    """How one connection's messages travel: frame opcode and payload of a message text."""

    name: str
    opcode: int

    def payload(self, text: str) -> bytes:
        """The frame payload of one message text (or one batch text)."""
        return to_msgpack(text) if self.opcode == OPCODE_BINARY else _utf8(text)

    def asgi_send(self, text: str) -> dict[str, Any]:
        """The ASGI ``websocket.send`` event of ``text``, where no direct write is possible."""
        if self.opcode == OPCODE_BINARY:
            return {"type": "websocket.send", "bytes": to_msgpack(text)}
        return {"type": "websocket.send", "text": text}


JSON = WireFormat("json", OPCODE_TEXT)
MSGPACK = WireFormat("msgpack", OPCODE_BINARY)
FORMATS = {f.name: f for f in (JSON, MSGPACK)}


def choose(query_string: bytes) -> tuple[WireFormat, str | None]:
    """The format a handshake's query string asks for, and an error text if it names none we have.

    An unknown or repeated ``format`` gets JSON (so the client can read why)
    plus the error; the consumer sends it and closes 1003.
    """
    try:
        values = parse_qs(query_string.decode("latin-1"), keep_blank_values=True).get(
            FORMAT_PARAMETER, []
        )
    except ValueError:  # parse_qs refuses over max_num_fields only; be safe anyway
        values = []
    if not values:
        return JSON, None
    wanted = values[0].strip().lower()
    if len(values) == 1 and wanted in FORMATS:
        return FORMATS[wanted], None
    shown = values[0] if len(values) == 1 and len(values[0]) <= 40 else "..."
    return JSON, f"unknown format {shown!r}: json or msgpack"


def parse_frame(wire: WireFormat, text: str | None, data: bytes | None) -> protocol.Request:
    """A client frame as a request: JSON text always, MessagePack binary on a msgpack connection."""
    if text is not None:
        return parsing.parse_client_frame(text)
    if wire is not MSGPACK:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "binary frames are not part of the protocol")
    return parsing.parse_request(decode_msgpack(data or b""))


def _text_keyed(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """A map as JSON has them: str keys only (a bin or int key would reach code expecting str)."""
    if not all(isinstance(key, str) for key, _ in pairs):
        raise ValueError("map keys must be strings")
    return dict(pairs)


def decode_msgpack(data: bytes) -> Any:
    """Decode one MessagePack object; ``bad_json`` when it is not exactly one valid object.

    msgpack's own limits hold: lengths cannot exceed the frame's size, and
    nesting past its fixed stack (1024 levels) is refused, not recursed into.
    """
    try:
        return msgpack.unpackb(data, raw=False, object_pairs_hook=_text_keyed)
    except msgpack.StackError:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "the MessagePack is nested too deeply") from None
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolError(
            ErrorCode.BAD_JSON, f"not valid MessagePack: {type(exc).__name__}: {exc}"[:200]
        ) from None


# --- permessage-deflate without context takeover (RFC 7692) ---------------------------------

_TAIL = b"\x00\x00\xff\xff"  # what a sync flush ends with; section 7.2.1 takes it off


def message_compressor(window_bits: int, level: int = 6) -> Callable[[bytes], bytes]:
    """Compress one message so that it inflates on its own (``server_no_context_takeover``).

    One zlib stream per window size serves every message: a full flush after
    each resets the match history, so no message refers to another, without
    the cost of a new compressor (a quarter of a MiB of state) per message.
    """
    stream = zlib.compressobj(level, zlib.DEFLATED, -window_bits)

    def compress(payload: bytes) -> bytes:
        data = stream.compress(payload) + stream.flush(zlib.Z_FULL_FLUSH)
        return data[: -len(_TAIL)] if data.endswith(_TAIL) else data

    return compress
