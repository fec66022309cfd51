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
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, TypeGuard

from feeds.core.engine import Quote

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
# In a subscribe, every instrument the user may see (PROTOCOL.md, "Wildcard subscription").
WILDCARD = "*"
# The longest per-subscription throttle: a dashboard that wants less should unsubscribe.
MAX_THROTTLE_MS = 60_000
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
    NOT_ENTITLED = "not_entitled"  # PROTOCOL.md "Entitlements"


class CloseCode(enum.IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003  # an unknown ?format= (PROTOCOL.md "MessagePack frames")
    MESSAGE_TOO_BIG = 1009
    UNAUTHORIZED = 4401
    TOO_MANY_CONNECTIONS = 4429


class State(enum.StrEnum):
    """Trading state of an instrument, as sent in ``status`` messages."""

    TRADING = "trading"
    HALTED = "halted"
    REVOKED = "revoked"  # entitlement withdrawn: the subscription is dropped


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
    """``symbols`` are the named ones (``"*"`` is taken out and sets ``wildcard``).

    ``since`` (symbol -> the last seq the client has, in ``epoch``) asks for a
    resume; every key is one of ``symbols`` unless ``wildcard`` is set, when
    the consumer checks the keys against what the wildcard covers.
    """

    symbols: tuple[str, ...]
    id: RequestId = None
    wildcard: bool = False
    throttle_ms: int = 0
    since: dict[str, int] | None = None
    epoch: str | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    symbols: tuple[str, ...]
    id: RequestId = None
    wildcard: bool = False


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
    return parse_request(data)


def parse_request(data: object) -> Request:
    """Validate a decoded request: a JSON text's, or a MessagePack frame's (wire_formats.py)."""
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
        return _subscribe(data, request_id)
    if op == "unsubscribe":
        symbols, wildcard = _symbols(data, request_id)
        return Unsubscribe(symbols, request_id, wildcard)
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
            return value
    return None


def _is_id(value: object) -> TypeGuard[str | int]:
    return isinstance(value, str | int) and not isinstance(value, bool)


def _request_id(data: dict[str, Any]) -> RequestId:
    if "id" not in data or data["id"] is None:
        return None
    value = data["id"]
    if not _is_id(value):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'id' must be a string or an integer")
    return value


def _subscribe(data: dict[str, Any], request_id: RequestId) -> Subscribe:
    symbols, wildcard = _symbols(data, request_id)
    since, epoch = _since(data, request_id)
    if since is not None and not wildcard:
        check_since(since, symbols, request_id)
    return Subscribe(
        symbols,
        request_id,
        wildcard=wildcard,
        throttle_ms=_throttle_ms(data, request_id),
        since=since,
        epoch=epoch,
    )


def _bad(message: str, request_id: RequestId) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, message, request_id=request_id)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _throttle_ms(data: dict[str, Any], request_id: RequestId) -> int:
    value = data.get("throttle_ms", 0)
    if not _is_int(value) or not 0 <= value <= MAX_THROTTLE_MS:
        raise _bad(f"'throttle_ms' must be an integer from 0 to {MAX_THROTTLE_MS}", request_id)
    return value


def _since(data: dict[str, Any], request_id: RequestId) -> tuple[dict[str, int] | None, str | None]:
    """``since`` and ``epoch`` of a resume request, or (None, None) when it has no ``since``."""
    raw = data.get("since")
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise _bad("'since' must be an object of symbol -> seq", request_id)
    epoch = data.get("epoch")
    if not isinstance(epoch, str):
        raise _bad("'since' needs the 'epoch' (a string) its seqs belong to", request_id)
    since: dict[str, int] = {}
    for key, seq in raw.items():
        if not _is_int(seq) or seq < 0:
            raise _bad("every seq in 'since' must be an integer >= 0", request_id)
        symbol = key.strip().upper()
        if symbol in since:
            raise _bad(f"'since' names {symbol[:40]!r} twice", request_id)
        since[symbol] = seq
    return since, epoch


def check_since(since: dict[str, int], symbols: Iterable[str], request_id: RequestId) -> None:
    """Raise ``bad_request`` when ``since`` names a symbol the request does not subscribe."""
    wanted = set(symbols)
    stray = [s for s in since if s not in wanted]
    if stray:
        shown = ", ".join(s[:40] for s in stray[:10])
        raise _bad(f"'since' names symbols this request does not subscribe: {shown}", request_id)


def _symbols(data: dict[str, Any], request_id: RequestId) -> tuple[tuple[str, ...], bool]:
    """The named symbols (upper-case, deduplicated, in order) and whether ``"*"`` was among them."""
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
    wildcard = WILDCARD in seen
    seen.pop(WILDCARD, None)
    return tuple(seen), wildcard


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


def subscribed(
    symbols: tuple[str, ...] | list[str],
    request_id: RequestId,
    recovered: dict[str, bool] | None = None,
) -> str:
    """The reply to a subscribe; ``recovered`` (symbol -> resumed?) answers a ``since``."""
    obj: dict[str, Any] = {"type": "subscribed", "symbols": list(symbols)}
    if recovered is not None:
        obj["recovered"] = recovered
    return _dump(_with_id(obj, request_id))


def unsubscribed(symbols: tuple[str, ...] | list[str], request_id: RequestId) -> str:
    return _dump(_with_id({"type": "unsubscribed", "symbols": list(symbols)}, request_id))


def subscriptions(symbols: list[str], request_id: RequestId) -> str:
    return _dump(_with_id({"type": "subscriptions", "symbols": sorted(symbols)}, request_id))


def pong(ts_us: int, request_id: RequestId) -> str:
    return _dump(_with_id({"type": "pong", "ts": ts_us}, request_id))


def heartbeat(ts_us: int) -> str:
    return _dump({"type": "heartbeat", "ts": ts_us})


def status(symbol: str, state: State) -> str:
    return _dump({"type": "status", "symbol": symbol, "state": str(state)})


# --- make-before-break (PROTOCOL.md "Make-before-break: reconnect") ---
class ReconnectReason(enum.StrEnum):
    """Why the server asks a client to move to a new connection."""

    SHUTDOWN = "shutdown"
    MAX_AGE = "max_age"


def reconnect(within_s: float, reason: ReconnectReason) -> str:
    """``reconnect``: the server closes this connection with 1001 ``within_s`` seconds from now."""
    seconds = int(within_s) if float(within_s).is_integer() else within_s
    return _dump({"type": "reconnect", "within_s": seconds, "reason": str(reason)})


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
        rest = quote_text[len(_QUOTE_PREFIX) :]
        return '{"type":"snapshot","epoch":' + json.dumps(epoch) + "," + rest
    fields = json.loads(quote_text)
    fields.update(type="snapshot", epoch=epoch)
    return _dump(fields)


def with_prev_seq(quote_text: str, prev_seq: int) -> str:
    """The quote text with ``"prev_seq"`` added: the one per-client variant of a quote.

    Spliced in before the closing brace, so the shared text is not decoded again.
    """
    return quote_text[:-1] + ',"prev_seq":' + str(prev_seq) + "}"


_SEQ_FIELD = '"seq":'


def quote_seq(quote_text: str) -> int:
    """The ``seq`` of a stored quote text (read from ``encode_quote``'s layout when it has it)."""
    start = quote_text.find(_SEQ_FIELD)
    if start != -1:
        start += len(_SEQ_FIELD)
        digits = quote_text[start : quote_text.find(",", start)]
        if digits.isascii() and digits.isdigit():
            return int(digits)
    seq: int = json.loads(quote_text)["seq"]
    return seq


def quote_fields(quote_text: str) -> dict[str, Any]:
    """A stored quote as the REST API shows it: the quote's fields less ``type``."""
    fields: dict[str, Any] = json.loads(quote_text)
    fields.pop("type", None)
    return fields
