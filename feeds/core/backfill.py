"""History for a first start: the bars an instrument would have made before now. Plain Python only.

A ticker that finds no recent bars of an instrument (a new database, a feed
that was off for days) gives the chart and ``GET /api/bars/`` something to
show at once: ``history()`` runs the same price process as the live ticker
(``engine.step`` with the instrument's spec and volatility, at the feed's time
scale) over the periods before the live start, one step per period, and makes
a bar of each:

- the path ends where the live process begins. A geometric Brownian motion
  scaled by a constant is the same process, so the simulated path is scaled
  until its last mid is the live state's mid, and the last bar closes on the
  live state's ``last`` exactly (the trade the live book starts after);
- open and close are trades at the bid or the ask of the book at the period's
  start and end; high and low are drawn from the extremes of a Brownian
  bridge between those mids (the exact law of the path's maximum and minimum
  given its ends), widened by half the spread, so a bar's range is what many
  trades in that period would have shown;
- the trades in a period are Poisson, the live rate (quote rate times the
  engine's trade probability, times the period); each trades 1 to
  ``MAX_LOTS_TRADED`` lots, as in the engine. A period without a trade has
  no bar, as live;
- prices are whole ticks, rounded like the quotes.

Everything random comes from a ``random.Random`` seeded with the feed's seed
and the symbol (not the live book's generator, which backfilling leaves
alone), so a seeded feed backfills the same bars every time.
"""

from __future__ import annotations

import math
import random
from typing import Any

from feeds.core import engine
from feeds.core.bars import Bar
from feeds.core.engine import InstrumentSpec, MarketState

MINUTES_PER_DAY = 1440
# A bar as a plain tuple: (start, open, high, low, close, volume, trades).
Row = tuple[int, float, float, float, float, int, int]
POISSON_EXACT_BELOW = 30.0  # larger means are drawn from the normal approximation
SUMMED_TRADES_UP_TO = 16  # more trades: their total size from the normal approximation
_LOT_MEAN = (1 + engine.MAX_LOTS_TRADED) / 2
_LOT_VARIANCE = (engine.MAX_LOTS_TRADED**2 - 1) / 12


def periods(days: int) -> int:
    """How many bars ``days`` of history are: one per minute (per period, with the test knob)."""
    return max(0, days) * MINUTES_PER_DAY


def history(
    spec: InstrumentSpec,
    end: MarketState,
    *,
    seed: int,
    count: int,
    period_s: int,
    time_scale: float,
    until_s: int,
) -> list[Bar]:
    """The bars of the ``count`` periods of ``period_s`` before ``until_s``, oldest first.

    ``end`` is the state the live process starts from; the last bar closes on
    its ``last`` price. Periods without trades are left out.
    """
    if count <= 0:
        return []
    rng = random.Random(f"{seed}:backfill:{spec.symbol}")
    dt_years = period_s * time_scale / engine.SECONDS_PER_YEAR
    state = engine.initial_state(spec, rng)
    mids, bids, asks = [state.mid], [state.bid], [state.ask]
    for _ in range(count):
        state = engine.step(spec, state, rng, dt_years)
        mids.append(state.mid)
        bids.append(state.bid)
        asks.append(state.ask)
    scale = end.mid / state.mid
    log_scale = math.log(scale)
    variance = spec.volatility * spec.volatility * dt_years
    trade_rate = engine.TRADE_PROBABILITY * spec.quote_rate * period_s
    tick, places, lot, symbol = spec.tick, spec.decimals, spec.lot_size, spec.symbol
    random_ = rng.random

    def trade(i: int) -> int:  # a trade at the bid or the ask of the book after step i, scaled
        return max(1, round((bids[i] if random_() < 0.5 else asks[i]) * scale))

    bars: list[Bar] = []
    first = until_s - count * period_s
    for i in range(count):
        trades = _poisson(rng, trade_rate)
        if i == count - 1:  # the live book starts after a trade: it is the last bar's close
            trades, close = max(trades, 1), end.last
        elif not trades:
            continue
        else:
            close = trade(i + 1)
        open_ = close if trades == 1 else trade(i)
        high, low = max(open_, close), min(open_, close)
        if trades > 2:
            a, b = math.log(mids[i]) + log_scale, math.log(mids[i + 1]) + log_scale
            top, bottom = _bridge_extremes(rng, a, b, variance)
            half_spread = (asks[i + 1] - bids[i + 1]) * scale / 2
            high = max(high, round(top / tick + half_spread))
            low = min(low, max(1, round(bottom / tick - half_spread)))
        bars.append(Bar(
            symbol, first + i * period_s, round(open_ * tick, places), round(high * tick, places),
            round(low * tick, places), round(close * tick, places),
            _lots_traded(rng, trades) * lot, trades,
        ))
    return bars


def history_rows(spec: InstrumentSpec, end: MarketState, **options: Any) -> list[Row]:
    """``history()`` as plain tuples, which cross a process boundary at a fraction of the cost."""
    return [
        (bar.start, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades)
        for bar in history(spec, end, **options)
    ]


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean >= POISSON_EXACT_BELOW:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _lots_traded(rng: random.Random, trades: int) -> int:
    """The lots of ``trades`` trades of 1 to ``MAX_LOTS_TRADED`` lots each."""
    if trades <= SUMMED_TRADES_UP_TO:
        return sum(rng.randint(1, engine.MAX_LOTS_TRADED) for _ in range(trades))
    drawn = round(rng.gauss(_LOT_MEAN * trades, math.sqrt(_LOT_VARIANCE * trades)))
    return min(engine.MAX_LOTS_TRADED * trades, max(trades, drawn))


def _bridge_extremes(
    rng: random.Random, a: float, b: float, variance: float
) -> tuple[float, float]:
    """The highest and lowest price of a Brownian path in log price from ``a`` to ``b``.

    For a Brownian bridge of variance ``variance``, P(max > m) =
    exp(-2 (m - a)(m - b) / variance); inverted for a uniform draw.
    """
    gap = (b - a) ** 2
    up = math.sqrt(gap - 2 * variance * math.log(1.0 - rng.random()))
    down = math.sqrt(gap - 2 * variance * math.log(1.0 - rng.random()))
    return math.exp((a + b + up) / 2), math.exp((a + b - down) / 2)
