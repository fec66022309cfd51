"""Typed values of what the feed sends, and the decoding of its frames.

Plain Python (plus ``msgpack`` when a connection asks for it): no I/O, so the
client's logic is tested without a network. Field names follow
docs/PROTOCOL.md; a message type or field this module does not know is
ignored, as the protocol asks of clients.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

QUOTE_TYPES = frozenset({"quote", "snapshot"})


class FeedError(Exception):
    """The feed refused something and retrying the same way cannot help."""


class AuthenticationError(FeedError):
    """The server refused the credentials (close 4401, or HTTP 403 on the handshake).

    Not retried: PROTOCOL.md says not to retry the same credentials.
    """


class ServerError(FeedError):
    """An ``error`` message answering one of our requests (``unknown_symbol``, ...)."""

    def __init__(self, code: str, message: str, symbols: tuple[str, ...] = ()) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.symbols = code, message, symbols


class CloseCode(enum.IntEnum):
    """The close codes PROTOCOL.md gives a meaning to."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_FORMAT = 1003  # the server does not know the ?format= asked for
    ABNORMAL = 1006  # no close frame: the connection was lost
    MESSAGE_TOO_BIG = 1009
    UNAUTHORIZED = 4401
    TOO_MANY_CONNECTIONS = 4429


@dataclass(frozen=True)
class Quote:
    """One quote (or the snapshot that starts a subscription) as the server sent it.

    ``epoch`` names the numbering ``seq`` belongs to; ``prev_seq`` is set when
    the server marked a skip (conflation, throttle). Prices are the JSON
    numbers of the wire, on the instrument's tick grid.
    """

    symbol: str
    seq: int
    bid: float
    ask: float
    bid_size: int
    ask_size: int
    last: float
    last_size: int
    volume: int
    ts: int
    epoch: str
    snapshot: bool = False
    prev_seq: int | None = None

    @property
    def time(self) -> datetime:
        """The generation time (``ts``, µs since the Unix epoch) as an aware datetime."""
        return datetime.fromtimestamp(self.ts / 1_000_000, tz=UTC)

    def to_json(self) -> str:
        """One line of JSON with every field (the CLI's ``--json`` output)."""
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class Gap:
    """Quotes of ``symbol`` that this client will never see.

    ``after_seq`` is the last seq delivered, ``next_seq`` the one delivered
    now. ``reason``: ``conflated`` (the server marked the skip with
    ``prev_seq``: it kept only the newest quote for a slow reader, or a
    throttle), ``lost`` (an unmarked jump: quotes lost with a connection),
    ``not_recovered`` (a resume the server could not replay; a snapshot
    follows), ``epoch`` (numbering restarted: the two seqs are not
    comparable, and ``missed`` is None).
    """

    symbol: str
    after_seq: int
    next_seq: int
    reason: str
    epoch: str

    @property
    def missed(self) -> int | None:
        """How many quotes were skipped, when the two seqs share an epoch."""
        return None if self.reason == "epoch" else self.next_seq - self.after_seq - 1


@dataclass(frozen=True)
class Status:
    """A ``status`` message: ``halted``, ``trading`` or ``revoked`` (subscription dropped)."""

    symbol: str
    state: str


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    LIVE = "live"  # subscribed: quotes flow
    RECONNECTING = "reconnecting"  # lost, or told to go: waiting, then dialling again
    CLOSED = "closed"


@dataclass(frozen=True)
class StateChange:
    """The client's connection changed state; ``detail`` says why, for people."""

    state: ConnectionState
    detail: str = ""


Event = Quote | Gap | Status | StateChange


def decode_frame(data: str | bytes) -> list[dict[str, Any]]:
    """The messages of one frame: a text frame is JSON, a binary one MessagePack.

    A batch (an array) is its elements in order; anything that is not an
    object is dropped, so a server newer than this client cannot crash it.
    """
    if isinstance(data, bytes):
        import msgpack  # only connections with ?format=msgpack need it

        value = msgpack.unpackb(data, raw=False)
    else:
        value = json.loads(data)
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def quote_from(msg: dict[str, Any], epoch: str) -> Quote:
    """The ``Quote`` of a ``quote`` or ``snapshot`` message received in ``epoch``.

    A snapshot names its own epoch; a quote belongs to the connection's.
    Raises ``KeyError`` / ``TypeError`` / ``ValueError`` on a malformed one.
    """
    prev = msg.get("prev_seq")
    return Quote(
        symbol=str(msg["symbol"]),
        seq=_int(msg["seq"]),
        bid=float(msg["bid"]),
        ask=float(msg["ask"]),
        bid_size=_int(msg["bid_size"]),
        ask_size=_int(msg["ask_size"]),
        last=float(msg["last"]),
        last_size=_int(msg["last_size"]),
        volume=_int(msg["volume"]),
        ts=_int(msg["ts"]),
        epoch=str(msg.get("epoch", epoch)),
        snapshot=msg["type"] == "snapshot",
        prev_seq=None if prev is None else _int(prev),
    )


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not an integer: {value!r}")
    return value


def server_error(msg: dict[str, Any]) -> ServerError:
    """The exception an ``error`` message stands for."""
    symbols = msg.get("symbols")
    return ServerError(
        code=str(msg.get("code", "")),
        message=str(msg.get("message", "")),
        symbols=tuple(str(s) for s in symbols) if isinstance(symbols, list) else (),
    )
