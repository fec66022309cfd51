"""One-minute OHLCV bars of the trades in the quote stream. Plain Python only.

The ticker hands every quote it makes to a ``BarAggregator`` together with the
instrument's cumulative volume *before* that quote. The engine adds a trade's
size to ``volume`` and nothing else changes it, so a quote reports a new trade
exactly when its volume grew; ``last`` alone cannot tell (a trade may repeat
the previous price). Hence:

- a bar covers one period (60 s; ``FEED_BARS_PERIOD_S`` shortens it for
  tests) of the quotes' ``ts``, in UTC, aligned to the Unix epoch;
- open/high/low/close are the ``last`` prices of the trades in it, in arrival
  order; ``volume`` is the volume traded in it; ``trades`` counts its trades;
- a period without trades has no bar, and so a halted instrument's bars stop;
- a quote stamped before its symbol's current bar (a clock stepped back) counts
  in the current bar: a bar that has closed is never reopened.

``drain()`` hands out copies of the bars changed since the previous call, for
a writer to store in one batch; nothing else is kept but the open bar of each
symbol, so memory is bounded by the number of instruments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from feeds.core.engine import Quote

PERIOD_S = 60
US_PER_S = 1_000_000


@dataclass(slots=True)
class Bar:
    """One period of one symbol's trades; ``start`` in seconds since the Unix epoch."""

    symbol: str
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    trades: int
    # The first bar of a symbol since the aggregator started: an earlier ticker
    # (a restart, a failover) may have stored the first part of the same period.
    fresh: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.symbol, self.start)


def merge(earlier: Bar, later: Bar) -> Bar:
    """The bar of one period made of two consecutive parts of its trades."""
    return replace(
        later,
        open=earlier.open,
        high=max(earlier.high, later.high),
        low=min(earlier.low, later.low),
        volume=earlier.volume + later.volume,
        trades=earlier.trades + later.trades,
        fresh=False,
    )


class BarAggregator:
    """The open bar of every symbol, and which bars changed since the last ``drain``."""

    __slots__ = ("_changed", "_open", "period_s")

    def __init__(self, period_s: int = PERIOD_S) -> None:
        if period_s < 1:
            raise ValueError("a bar period is at least one second")
        self.period_s = period_s
        self._open: dict[str, Bar] = {}
        self._changed: dict[tuple[str, int], Bar] = {}

    def record(self, quote: Quote, previous_volume: int) -> None:
        """Count ``quote`` if it reports a trade; cheap when it does not (most quotes)."""
        traded = quote.volume - previous_volume
        if traded <= 0:
            return
        price = quote.last
        bar = self._open.get(quote.symbol)
        start = quote.ts // (self.period_s * US_PER_S) * self.period_s
        if bar is None or start > bar.start:
            bar = Bar(quote.symbol, start, price, price, price, price, traded, 1, fresh=bar is None)
            self._open[quote.symbol] = bar
        else:
            if price > bar.high:
                bar.high = price
            elif price < bar.low:
                bar.low = price
            bar.close = price
            bar.volume += traded
            bar.trades += 1
        self._changed[bar.key] = bar

    def drain(self) -> list[Bar]:
        """Copies of the bars changed since the last call, oldest period first."""
        changed = sorted(self._changed.values(), key=lambda bar: bar.start)
        self._changed = {}
        return [replace(bar) for bar in changed]


def roll_up(newest_first: Iterable[Bar], span_s: int, limit: int) -> list[Bar]:
    """The newest ``limit`` bars of ``span_s`` seconds made of shorter ones, oldest first.

    ``newest_first`` are consecutive bars of one symbol, newest first; a longer
    bar starts on a multiple of ``span_s`` since the Unix epoch, so five-minute
    and hourly bars line up with the clock.
    """
    out: list[Bar] = []
    for bar in newest_first:
        start = bar.start // span_s * span_s
        if out and out[-1].start == start:
            out[-1] = merge(replace(bar, start=start), out[-1])
        elif len(out) == limit:
            break
        else:
            out.append(replace(bar, start=start, fresh=False))
    out.reverse()
    return out
