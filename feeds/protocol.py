"""The wire protocol of docs/PROTOCOL.md as typed values. Plain Python only.

Client frames are parsed into ``Request`` values by ``parse_client_frame``,
which raises ``ProtocolError`` for anything the contract calls an error.
Server messages are built here too, as JSON text, so every byte a client sees
comes from one place.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from feeds.engine import Quote

PROTOCOL_VERSION = 1
# The instrument symbol rule (feeds.models validates with it too).
SYMBOL_PATTERN = r"^[A-Z0-9.\-/_]{1,20}$"
_SYMBOL_RE = re.compile(SYMBOL_PATTERN)
OPS = ("subscribe", "unsubscribe", "list", "ping", "auth")
# Brackets nested deeper than this (outside strings) make a frame bad_request
# before it is decoded. The decoder recurses once per level, so without a fixed
# bound the answer to a deep frame would depend on how deep the caller's stack
# happens to be; no request of the protocol nests more than three levels.
MAX_JSON_DEPTH = 100
# A JSON string, or an unterminated one running to the end of the text.
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKET_RE = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class ErrorCode(enum.StrEnum):
    BAD_JSON = "bad_json"
    BAD_REQUEST = "bad_request"
    UNKNOWN_SYMBOL = "unknown_symbol"
    TOO_MANY_SYMBOLS = "too_many_symbols"
    RATE_LIMITED = "rate_limited"
    UNAUTHORIZED = "unauthorized"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    MESSAGE_TOO_LARGE = "message_too_large"


class CloseCode(enum.IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    UNAUTHORIZED = 4401
    TOO_MANY_CONNECTIONS = 4429


class State(enum.StrEnum):
    """Trading state of an instrument, as sent in ``status`` messages."""

    TRADING = "trading"
    HALTED = "halted"


RequestId = str | int | None


class ProtocolError(Exception):
    """A client mistake, answered with an ``error`` message."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        request_id: RequestId = None,
        symbols: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.symbols = symbols

    def to_text(self) -> str:
        return error(self.code, self.message, request_id=self.request_id, symbols=self.symbols)


@dataclass(frozen=True, slots=True)
class Subscribe:
    symbols: tuple[str, ...]
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    symbols: tuple[str, ...]
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class ListSubscriptions:
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Ping:
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Auth:
    token: str
    id: RequestId = None


Request = Subscribe | Unsubscribe | ListSubscriptions | Ping | Auth


def is_symbol(text: str) -> bool:
    """True when ``text`` could name an instrument (it may still be unknown)."""
    return _SYMBOL_RE.fullmatch(text) is not None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def too_deep(text: str) -> bool:
    """True when brackets outside strings nest deeper than ``MAX_JSON_DEPTH``, valid JSON or not."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False  # the fast path: every real request
    brackets = _NOT_BRACKET_RE.sub("", _STRING_RE.sub("", text))
    # A stray closer only lowers the running count, and the decoder stops at it
    # anyway: the maximum is never below the depth the decoder would reach.
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0) > MAX_JSON_DEPTH


def parse_client_frame(text: str) -> Request:
    """Parse one client text frame; raise ``ProtocolError`` for anything invalid."""
    if too_deep(text):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep"
        )
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:  # not reached below MAX_JSON_DEPTH; kept as a guard
        raise ProtocolError(ErrorCode.BAD_REQUEST, "the JSON is nested too deeply") from None
    except ValueError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "a request is a JSON object")
    request_id = _request_id(data)
    op = data.get("op")
    if not isinstance(op, str) or op not in OPS:
        shown = op if isinstance(op, str) and len(op) <= 40 else type(op).__name__
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"unknown op {shown!r}; expected one of {', '.join(OPS)}",
            request_id=request_id,
        )
    if op == "subscribe":
        return Subscribe(_symbols(data, request_id), request_id)
    if op == "unsubscribe":
        return Unsubscribe(_symbols(data, request_id), request_id)
    if op == "list":
        return ListSubscriptions(request_id)
    if op == "ping":
        return Ping(request_id)
    token = data.get("token")
    if not isinstance(token, str) or not token:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, "auth needs a 'token' string", request_id=request_id
        )
    return Auth(token, request_id)


def readable_id(text: str) -> RequestId:
    """The ``id`` of a frame that failed for another reason, when it can be read at all."""
    if too_deep(text):
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict):
        value = data.get("id")
        if _is_id(value):
            return value  # type: ignore[no-any-return]
    return None


def _is_id(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def _request_id(data: dict[str, Any]) -> RequestId:
    if "id" not in data or data["id"] is None:
        return None
    value = data["id"]
    if not _is_id(value):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'id' must be a string or an integer")
    return value  # type: ignore[no-any-return]


def _symbols(data: dict[str, Any], request_id: RequestId) -> tuple[str, ...]:
    raw = data.get("symbols")
    if not isinstance(raw, list) or not raw:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            "'symbols' must be a non-empty list of strings",
            request_id=request_id,
        )
    seen: dict[str, None] = {}
    for item in raw:
        if not isinstance(item, str):
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, "every symbol must be a string", request_id=request_id
            )
        seen.setdefault(item.strip().upper(), None)
    return tuple(seen)


# --- server messages ---------------------------------------------------------------


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _with_id(obj: dict[str, Any], request_id: RequestId) -> dict[str, Any]:
    if request_id is not None:
        obj["id"] = request_id
    return obj


def welcome(
    *, user: str, heartbeat_s: float, max_symbols: int, epoch: str, request_id: RequestId = None
) -> str:
    heartbeat: float | int = int(heartbeat_s) if float(heartbeat_s).is_integer() else heartbeat_s
    return _dump(
        _with_id(
            {
                "type": "welcome",
                "user": user,
                "heartbeat_s": heartbeat,
                "max_symbols": max_symbols,
                "protocol": PROTOCOL_VERSION,
                "epoch": epoch,
            },
            request_id,
        )
    )


def subscribed(symbols: tuple[str, ...], request_id: RequestId) -> str:
    return _dump(_with_id({"type": "subscribed", "symbols": list(symbols)}, request_id))


def unsubscribed(symbols: tuple[str, ...], request_id: RequestId) -> str:
    return _dump(_with_id({"type": "unsubscribed", "symbols": list(symbols)}, request_id))


def subscriptions(symbols: list[str], request_id: RequestId) -> str:
    return _dump(_with_id({"type": "subscriptions", "symbols": sorted(symbols)}, request_id))


def pong(ts_us: int, request_id: RequestId) -> str:
    return _dump(_with_id({"type": "pong", "ts": ts_us}, request_id))


def heartbeat(ts_us: int) -> str:
    return _dump({"type": "heartbeat", "ts": ts_us})


def status(symbol: str, state: State) -> str:
    return _dump({"type": "status", "symbol": symbol, "state": str(state)})


def error(
    code: ErrorCode,
    message: str,
    *,
    request_id: RequestId = None,
    symbols: tuple[str, ...] = (),
) -> str:
    obj: dict[str, Any] = {"type": "error", "code": str(code), "message": message}
    if symbols:
        obj["symbols"] = list(symbols)
    return _dump(_with_id(obj, request_id))


_QUOTE_PREFIX = '{"type":"quote",'


def encode_quote(quote: Quote, seq: int) -> str:
    """The one JSON text of a quote; every subscriber is sent these same bytes."""
    return _dump(
        {
            "type": "quote",
            "symbol": quote.symbol,
            "seq": seq,
            "bid": quote.bid,
            "ask": quote.ask,
            "bid_size": quote.bid_size,
            "ask_size": quote.ask_size,
            "last": quote.last,
            "last_size": quote.last_size,
            "volume": quote.volume,
            "ts": quote.ts,
        }
    )


def snapshot_from_quote(quote_text: str, epoch: str) -> str:
    """Turn a stored quote text into a ``snapshot`` of the given epoch."""
    if quote_text.startswith(_QUOTE_PREFIX):
        return '{"type":"snapshot","epoch":' + json.dumps(epoch) + "," + quote_text[len(_QUOTE_PREFIX) :]
    fields = json.loads(quote_text)
    fields.update(type="snapshot", epoch=epoch)
    return _dump(fields)


def quote_fields(quote_text: str) -> dict[str, Any]:
    """A stored quote as the REST API shows it: the quote's fields less ``type``."""
    fields: dict[str, Any] = json.loads(quote_text)
    fields.pop("type", None)
    return fields
