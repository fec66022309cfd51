"""Where a resumed stream starts again: the two resume rules of PROTOCOL.md, as plain values.

A client that reconnects names what it already has, and the session replays
what it missed from the quote store's per-symbol ring instead of sending
snapshots. Both rules work in two steps around one store read:
``reachable`` says which ring entries to read (symbol -> the seq after which
they are wanted), ``missed`` turns what the store found into each symbol's
missed quotes, in seq order, or None where they cannot be had (another
epoch, a ring that no longer reaches back, a seq this store never reached);
such a symbol gets a snapshot instead.

- ``Since``: the WebSocket ``subscribe`` with ``since`` and ``epoch``: each
  symbol resumes exactly after the seq the client names.
- ``LastEventId``: the SSE ``Last-Event-ID: SYMBOL:seq``: the named symbol
  resumes exactly; the others by time, from their newest quote stamped no
  later than the named one (one duplicate at most).

Plain Python: no I/O, no clock.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from typing import Protocol

from feeds.core import protocol

# symbol -> (seq, text) of its newest stored quote; (0, "") for none.
Latest = dict[str, tuple[int, str]]
Found = dict[str, list[str] | None]
# A LastEventId resume reads each other symbol's ring from its newest seq less
# the ring's size; this many quotes may arrive between the two reads before
# that read misses the start it needs.
RING_READ_MARGIN = 16
_TS_FIELD = '"ts":'


class Resume(Protocol):
    def reachable(self, symbols: tuple[str, ...], latest: Latest, epoch: str) -> dict[str, int]:
        """What to read from the store's rings: symbol -> replay the quotes after this seq."""
        ...

    def missed(self, symbols: tuple[str, ...], latest: Latest, found: Found) -> Found:
        """Each resumed symbol's missed quotes (in seq order), None where a snapshot must do."""
        ...

    def recovered(self, symbols: tuple[str, ...], missed: Found) -> dict[str, bool]:
        """The ``recovered`` field of the reply: which symbols were replayed."""
        ...


@dataclass(frozen=True, slots=True)
class Since:
    """``since`` (symbol -> the last seq the client has) in the client's ``epoch``."""

    since: dict[str, int]
    epoch: str | None

    def reachable(self, symbols: tuple[str, ...], latest: Latest, epoch: str) -> dict[str, int]:
        if self.epoch != epoch:
            return {}
        return {s: n for s, n in self.since.items() if n <= latest.get(s, (0, ""))[0]}

    def missed(self, symbols: tuple[str, ...], latest: Latest, found: Found) -> Found:
        return {s: found.get(s) for s in self.since}

    def recovered(self, symbols: tuple[str, ...], missed: Found) -> dict[str, bool]:
        return {s: missed.get(s) is not None for s in self.since}


@dataclass(frozen=True, slots=True)
class LastEventId:
    """The SSE ``Last-Event-ID`` ``SYMBOL:seq`` and the store's ring size."""

    symbol: str
    seq: int
    ring: int

    def reachable(self, symbols: tuple[str, ...], latest: Latest, epoch: str) -> dict[str, int]:
        if self.symbol not in symbols or not 1 <= self.seq <= latest.get(self.symbol, (0, ""))[0]:
            return {}  # not this stream's, or a seq this store has not reached (another epoch)
        since = {
            s: max(0, n - self.ring + RING_READ_MARGIN)
            for s, (n, _) in latest.items()
            if s != self.symbol and s in symbols
        }
        since[self.symbol] = self.seq - 1  # from the named quote itself: its ts is the cutoff
        return since

    def missed(self, symbols: tuple[str, ...], latest: Latest, found: Found) -> Found:
        own = found.get(self.symbol)
        if not own or protocol.quote_seq(own[0]) != self.seq:
            return {}
        cutoff = quote_ts(own[0])
        missed: Found = {self.symbol: own[1:]}
        for symbol in symbols:
            if symbol != self.symbol:
                ring = found.get(symbol, [])  # a symbol without quotes has an empty ring
                missed[symbol] = None if ring is None else resume_from(ring, cutoff)
        return missed

    def recovered(self, symbols: tuple[str, ...], missed: Found) -> dict[str, bool]:
        return {s: missed.get(s) is not None for s in symbols}


def parse_last_event_id(value: str | None, ring: int) -> LastEventId | None:
    """The resume of ``Last-Event-ID: SYMBOL:seq``; None when absent or not that form."""
    if not value:
        return None
    symbol, _, seq = value.strip().rpartition(":")
    if not protocol.is_symbol(symbol) or not seq.isascii() or not seq.isdigit() or len(seq) > 18:
        return None
    return LastEventId(symbol, int(seq), ring)


def quote_ts(text: str) -> int:
    """The ``ts`` of a stored quote text (the last field ``encode_quote`` writes)."""
    at = text.rfind(_TS_FIELD)
    if at >= 0:
        digits = text[at + len(_TS_FIELD) :].rstrip("}").split(",")[0]
        if digits.isascii() and digits.isdigit():
            return int(digits)
    ts: int = json.loads(text)["ts"]
    return ts


def resume_from(ring: list[str], cutoff_ts: int) -> list[str] | None:
    """The ring entries a client that last saw a quote stamped ``cutoff_ts`` may lack.

    From the newest entry stamped at or before ``cutoff_ts`` (the client may
    have it: one duplicate at most) to the end; None when every entry is
    newer and the ring does not start at the symbol's first quote (the ring
    no longer reaches back). The ticker stamps quotes in the order it
    publishes them, and a stream delivers them in that order, so whatever
    the client got of this symbol is not newer than the cutoff.
    """
    start = bisect.bisect_right(ring, cutoff_ts, key=quote_ts) - 1
    if start >= 0:
        return ring[start:]
    if ring and protocol.quote_seq(ring[0]) == 1:
        return ring
    return None if ring else []
