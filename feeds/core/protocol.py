"""The wire protocol of docs/PROTOCOL.md as typed values. Plain Python only.

The requests a client may send, as ``Request`` values (parsed from frames
by ``feeds.core.parsing``), the errors and close codes, and every server
message, built here as JSON text so that every byte a client sees comes
from one place.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any

from feeds.core.engine import Quote

PROTOCOL_VERSION = 1
# The instrument symbol rule (feeds.models validates with it too).
SYMBOL_PATTERN = r"^[A-Z0-9.\-/_]{1,20}$"
_SYMBOL_RE = re.compile(SYMBOL_PATTERN)
OPS = ("subscribe", "unsubscribe", "list", "ping", "auth", "watchlists")
# Brackets nested deeper than this (outside strings) make a frame bad_request
# before it is decoded. The decoder recurses once per level, so without a fixed
# bound the answer to a deep frame would depend on how deep the caller's stack
# happens to be; no request of the protocol nests more than three levels.
MAX_JSON_DEPTH = 100
# In a subscribe, every instrument the user may see (PROTOCOL.md, "Wildcard subscription").
WILDCARD = "*"
# The longest per-subscription throttle: a dashboard that wants less should unsubscribe.
MAX_THROTTLE_MS = 60_000


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


@dataclass(frozen=True, slots=True)
class Watchlists:
    """The user's watchlists now; ``follow``: and again whenever they change (PROTOCOL.md)."""

    id: RequestId = None
    follow: bool = True


Request = Subscribe | Unsubscribe | ListSubscriptions | Ping | Auth | Watchlists


def is_symbol(text: str) -> bool:
    """True when ``text`` could name an instrument (it may still be unknown)."""
    return _SYMBOL_RE.fullmatch(text) is not None


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


def watchlists(lists: list[dict[str, Any]], request_id: RequestId = None) -> str:
    """The user's watchlists (``id``, ``name``, ``symbols``, ``updated`` each), oldest first."""
    return _dump(_with_id({"type": "watchlists", "lists": lists}, request_id))


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
