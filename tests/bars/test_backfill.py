"""The pure backfill (feeds.core.backfill): the price process's past, ending on the live price."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from decimal import Decimal

import pytest

from feeds.core import engine
from feeds.core.backfill import history, periods
from feeds.core.engine import InstrumentSpec, MarketState

UNTIL = 1_800_000_000 // 60 * 60  # the live start's minute, seconds
DAY = periods(1)
SPECS = [
    InstrumentSpec("AAPL", Decimal("0.01"), 100, Decimal("278.50"), 0.25, 8.0),
    InstrumentSpec("EUR/USD", Decimal("0.00001"), 1000, Decimal("1.16450"), 0.07, 10.0),
    InstrumentSpec("USD/JPY", Decimal("0.001"), 1000, Decimal("155.480"), 0.10, 9.0),
    InstrumentSpec("DOGE-USD", Decimal("0.00001"), 1, Decimal("0.14920"), 0.95, 4.0),
    InstrumentSpec("XRP-USD", Decimal("0.0001"), 1, Decimal("2.0840"), 0.80, 4.0),
]


def live_start(spec: InstrumentSpec, seed: int = 7, steps: int = 0) -> MarketState:
    """The state the ticker starts a book at: fresh, or resumed after ``steps`` quotes."""
    rng = random.Random(f"{seed}:{spec.symbol}")
    state = engine.initial_state(spec, rng)
    for _ in range(steps):
        state = engine.step(spec, state, rng, 60 / engine.SECONDS_PER_YEAR)
    return state


def backfill(spec: InstrumentSpec, end: MarketState, **options):
    options = {"seed": 7, "count": 2 * DAY, "period_s": 60, "time_scale": 60.0,
               "until_s": UNTIL, **options}
    return history(spec, end, **options)


def on_grid(price: float, tick: Decimal) -> bool:
    return Decimal(repr(price)) % tick == 0


def test_two_days_are_2880_one_minute_bars_and_none_is_zero_days():
    assert periods(2) == 2880
    assert periods(0) == 0
    assert backfill(SPECS[0], live_start(SPECS[0]), count=0) == []


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.symbol)
@pytest.mark.parametrize("steps", [0, 500], ids=["fresh", "resumed"])
def test_the_last_bar_closes_exactly_on_the_price_the_live_process_starts_at(spec, steps):
    end = live_start(spec, steps=steps)
    bars = backfill(spec, end)
    first_live_quote = engine.quote_of(spec, end, UNTIL * 1_000_000)
    assert bars[-1].close == first_live_quote.last
    assert bars[-1].start == UNTIL - 60  # the minute before the live one
    # No jump where history meets the live prices: within a few of the last bar's own ranges.
    ranges = statistics.median(bar.high - bar.low for bar in bars[-60:])
    assert abs(bars[-2].close - bars[-1].close) < 5 * ranges


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.symbol)
def test_every_price_is_on_the_tick_grid_and_every_bar_is_consistent(spec):
    bars = backfill(spec, live_start(spec))
    for bar in bars:
        for price in (bar.open, bar.high, bar.low, bar.close):
            assert price > 0
            assert on_grid(price, spec.tick_size), (bar, price)
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.trades >= 1
        assert bar.volume % spec.lot_size == 0
        lots = bar.volume // spec.lot_size
        assert bar.trades <= lots <= engine.MAX_LOTS_TRADED * bar.trades


def test_every_minute_of_two_days_has_its_bar_at_the_default_rates():
    bars = backfill(SPECS[0], live_start(SPECS[0]))
    assert len(bars) == 2880
    assert [bar.start for bar in bars] == list(range(UNTIL - 2880 * 60, UNTIL, 60))
    assert {bar.symbol for bar in bars} == {"AAPL"}
    assert not any(bar.fresh for bar in bars)


def test_with_short_test_periods_quiet_ones_have_no_bar_but_the_last_is_always_there():
    spec = SPECS[3]  # 4 quotes/s: 1.2 trades in a one-second period, often none
    end = live_start(spec)
    bars = backfill(spec, end, period_s=1, count=600)
    starts = [bar.start for bar in bars]
    assert 300 < len(bars) < 600
    assert starts == sorted(set(starts))
    assert all(UNTIL - 600 <= s < UNTIL for s in starts)
    assert bars[-1].start == UNTIL - 1
    assert bars[-1].close == engine.quote_of(spec, end, 0).last


def test_a_seed_makes_the_same_history_every_time_and_another_seed_another():
    spec, end = SPECS[1], live_start(SPECS[1])
    assert backfill(spec, end) == backfill(spec, end)
    other = backfill(spec, end, seed=8)
    assert other != backfill(spec, end)
    assert other[-1].close == backfill(spec, end)[-1].close  # both end where the live one starts


def test_the_history_is_the_live_process_trades_volumes_and_volatility():
    """Same statistics as the live bars: trades, sizes, and the returns' spread."""
    spec = SPECS[0]
    bars = backfill(spec, live_start(spec))
    trades = statistics.mean(bar.trades for bar in bars)
    expected = engine.TRADE_PROBABILITY * spec.quote_rate * 60  # 144 trades a minute
    assert trades == pytest.approx(expected, rel=0.03)
    lots_per_trade = sum(bar.volume for bar in bars) / spec.lot_size / sum(b.trades for b in bars)
    assert lots_per_trade == pytest.approx((1 + engine.MAX_LOTS_TRADED) / 2, rel=0.03)
    # A minute is an hour of the market at time scale 60: the closes' log returns.
    returns = [math.log(b.close / a.close) for a, b in itertools.pairwise(bars)]
    sigma = spec.volatility * math.sqrt(60 * 60 / engine.SECONDS_PER_YEAR)
    assert statistics.stdev(returns) == pytest.approx(sigma, rel=0.1)
    # A bar's range is that of many trades over a Brownian hour, not of two prices.
    relative_range = statistics.mean((b.high - b.low) / b.close for b in bars)
    assert 1.2 * sigma < relative_range < 2.5 * sigma


def test_the_backfill_leaves_the_live_books_generator_alone():
    spec = SPECS[0]
    rng = random.Random(f"7:{spec.symbol}")
    end = engine.initial_state(spec, rng)
    state = rng.getstate()
    backfill(spec, end)
    assert rng.getstate() == state
