"""The price process: plain Python, no Django, no I/O.

Each instrument's mid price follows a geometric Brownian motion with the
instrument's annualised volatility and no drift. A quote places bid and ask a
whole number of ticks apart around the mid (never crossed, never at or below
zero), with sizes in whole lots; about one quote in three also reports a trade
at the bid or the ask, which moves ``last``, ``last_size`` and ``volume``.
Quote arrivals are a Poisson process at the instrument's quote rate.

Everything random comes from the ``random.Random`` passed in, and time from
the ``dt`` passed in, so a seeded run is reproducible step for step.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from decimal import Decimal

SECONDS_PER_YEAR = 365.25 * 24 * 3600  # crypto and FX never close; keep one clock
TRADE_PROBABILITY = 0.3
# Half a basis point of the mid either side: roughly a liquid market's spread.
SPREAD_FRACTION = 1e-4
MAX_LOTS_QUOTED = 20
MAX_LOTS_TRADED = 10


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """What the engine needs to know about an instrument."""

    symbol: str
    tick_size: Decimal
    lot_size: int
    reference_price: Decimal
    volatility: float  # annualised, as a fraction
    quote_rate: float  # quotes per second

    @property
    def tick(self) -> float:
        return float(self.tick_size)

    @property
    def decimals(self) -> int:
        """Decimal places of the tick grid: prices are rounded to these."""
        exponent = self.tick_size.normalize().as_tuple().exponent
        return max(0, -int(exponent))


@dataclass(frozen=True, slots=True)
class MarketState:
    """The instrument's book top and tape, in ticks and lots."""

    mid: float  # the latent price, in price units
    bid: int  # ticks
    ask: int  # ticks
    bid_size: int
    ask_size: int
    last: int  # ticks
    last_size: int
    volume: int


@dataclass(frozen=True, slots=True)
class Quote:
    """One published quote, prices already on the tick grid."""

    symbol: str
    bid: float
    ask: float
    bid_size: int
    ask_size: int
    last: float
    last_size: int
    volume: int
    ts: int  # generation time, integer microseconds since the Unix epoch


def initial_state(spec: InstrumentSpec, rng: random.Random) -> MarketState:
    """The book at the reference price, after an opening trade of one lot there."""
    mid = float(spec.reference_price)
    bid, ask = _book(spec, mid, rng)
    last = max(1, round(mid / spec.tick))
    return MarketState(
        mid=mid,
        bid=bid,
        ask=ask,
        bid_size=spec.lot_size * rng.randint(1, MAX_LOTS_QUOTED),
        ask_size=spec.lot_size * rng.randint(1, MAX_LOTS_QUOTED),
        last=last,
        last_size=spec.lot_size,
        volume=spec.lot_size,
    )


def step(
    spec: InstrumentSpec, state: MarketState, rng: random.Random, dt_years: float
) -> MarketState:
    """Advance the market by ``dt_years`` of simulated time and quote it afresh."""
    sigma = spec.volatility
    shock = rng.gauss(0.0, 1.0)
    drift = -0.5 * sigma * sigma * dt_years
    mid = state.mid * math.exp(drift + sigma * math.sqrt(dt_years) * shock)
    bid, ask = _book(spec, mid, rng)
    last, last_size, volume = state.last, state.last_size, state.volume
    if rng.random() < TRADE_PROBABILITY:
        last = bid if rng.random() < 0.5 else ask
        last_size = spec.lot_size * rng.randint(1, MAX_LOTS_TRADED)
        volume += last_size
    return replace(
        state,
        mid=mid,
        bid=bid,
        ask=ask,
        bid_size=spec.lot_size * rng.randint(1, MAX_LOTS_QUOTED),
        ask_size=spec.lot_size * rng.randint(1, MAX_LOTS_QUOTED),
        last=last,
        last_size=last_size,
        volume=volume,
    )


def quote_of(spec: InstrumentSpec, state: MarketState, ts_us: int) -> Quote:
    """The wire view of ``state``: ticks turned into prices on the grid."""
    tick, places = spec.tick, spec.decimals
    return Quote(
        symbol=spec.symbol,
        bid=round(state.bid * tick, places),
        ask=round(state.ask * tick, places),
        bid_size=state.bid_size,
        ask_size=state.ask_size,
        last=round(state.last * tick, places),
        last_size=state.last_size,
        volume=state.volume,
        ts=ts_us,
    )


def rescale(spec: InstrumentSpec, state: MarketState, old_tick: Decimal) -> MarketState:
    """Carry a state over to a new tick size (an admin edit), keeping its prices."""
    ratio = float(old_tick) / spec.tick
    # Outward rounding keeps both sides within one new tick and never crosses them.
    bid = max(1, math.floor(state.bid * ratio + 1e-9))
    return replace(
        state,
        bid=bid,
        ask=max(bid + 1, math.ceil(state.ask * ratio - 1e-9)),
        last=max(1, round(state.last * ratio)),
    )


def next_interval(spec: InstrumentSpec, rng: random.Random) -> float:
    """Seconds until the instrument's next quote: exponential, mean 1 / quote_rate."""
    return rng.expovariate(spec.quote_rate)


def _book(spec: InstrumentSpec, mid: float, rng: random.Random) -> tuple[int, int]:
    centre = mid / spec.tick
    base = centre * SPREAD_FRACTION
    spread = max(1, round(base * (0.5 + rng.random())))
    bid = max(1, math.floor(centre - spread / 2))
    return bid, bid + spread
