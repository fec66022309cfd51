"""The price process (feeds/core/engine.py): grid, book and tape invariants, statistics."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from decimal import Decimal

import pytest

from feeds.core.engine import (
    SECONDS_PER_YEAR,
    InstrumentSpec,
    MarketState,
    Quote,
    initial_state,
    next_interval,
    quote_of,
    rescale,
    step,
)

STEPS = 20_000
ONE_SECOND = 1.0 / SECONDS_PER_YEAR
ONE_DAY = 86_400.0 / SECONDS_PER_YEAR
TS = 1_764_000_000_000_000

EQUITY = InstrumentSpec("AAPL", Decimal("0.01"), 100, Decimal("189.25"), 0.25, 5.0)
FX = InstrumentSpec("EUR/USD", Decimal("0.00001"), 1000, Decimal("1.08523"), 0.08, 20.0)
CRYPTO = InstrumentSpec("BTC-USD", Decimal("0.01"), 1, Decimal("64321.57"), 0.6, 10.0)
# Five ticks above zero: the book is clamped at one tick almost at once.
TINY = InstrumentSpec("PEPE-USD", Decimal("0.0001"), 1000, Decimal("0.0005"), 1.5, 5.0)

SPECS = [EQUITY, FX, CRYPTO, TINY]
ids = [s.symbol for s in SPECS]


def on_grid(price: float, tick: Decimal) -> bool:
    return Decimal(repr(price)) % tick == 0


def run(
    spec: InstrumentSpec, seed: int, steps: int, dt_years: float
) -> tuple[list[MarketState], list[Quote]]:
    rng = random.Random(seed)
    state = initial_state(spec, rng)
    states, quotes = [state], [quote_of(spec, state, TS)]
    for i in range(1, steps + 1):
        state = step(spec, state, rng, dt_years)
        states.append(state)
        quotes.append(quote_of(spec, state, TS + i))
    return states, quotes


def log_return_vol(prices: list[float], dt_years: float) -> float:
    returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
    return statistics.stdev(returns) / math.sqrt(dt_years)


# --- initial state -------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_initial_state_is_an_opening_trade_of_one_lot_at_the_reference_price(spec):
    state = initial_state(spec, random.Random(1))
    quote = quote_of(spec, state, TS)
    assert on_grid(quote.last, spec.tick_size)
    assert Decimal(repr(quote.last)) == spec.reference_price
    assert quote.last_size == spec.lot_size
    assert quote.volume == spec.lot_size
    assert state.mid == float(spec.reference_price)
    assert 0 < quote.bid < quote.ask


# --- invariants over many steps ------------------------------------------------------


@pytest.mark.parametrize(
    "dt_years", [ONE_SECOND, ONE_DAY], ids=["1s-steps", "1day-steps-prices-wander-far"]
)
@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_every_quote_is_an_uncrossed_positive_book_on_the_tick_grid_in_whole_lots(spec, dt_years):
    tick, lot = spec.tick_size, spec.lot_size
    states, quotes = run(spec, seed=42, steps=STEPS, dt_years=dt_years)
    trades = 0
    prev = quotes[0]
    for state, q in zip(states, quotes, strict=True):
        assert 0 < q.bid < q.ask, q
        assert 1 <= state.bid < state.ask, state
        for price in (q.bid, q.ask, q.last):
            assert price > 0, q
            assert on_grid(price, tick), (price, q)
        spread_ticks = (Decimal(repr(q.ask)) - Decimal(repr(q.bid))) / tick
        assert spread_ticks == spread_ticks.to_integral_value(), q
        assert spread_ticks >= 1, q
        assert spread_ticks == state.ask - state.bid, (q, state)
        for size in (q.bid_size, q.ask_size, q.last_size, q.volume):
            assert isinstance(size, int)
            assert not isinstance(size, bool)
            assert size > 0, q
        for size in (q.bid_size, q.ask_size, q.last_size):
            assert size % lot == 0, q
        assert q.symbol == spec.symbol

        assert q.volume >= prev.volume, (prev, q)
        if q.volume != prev.volume:
            trades += 1
            # A trade: the volume grows by exactly the trade's size, at the bid or ask.
            assert q.volume - prev.volume == q.last_size, (prev, q)
            assert q.last in (q.bid, q.ask), q
        else:
            # No trade: the tape is untouched.
            assert (q.last, q.last_size) == (prev.last, prev.last_size), (prev, q)
        prev = q
    # About 30% of steps trade; the checks above were not vacuous.
    assert 0.27 < trades / STEPS < 0.33


def test_the_tiny_price_coin_is_clamped_at_one_tick_not_zero_when_its_price_collapses():
    states, quotes = run(TINY, seed=42, steps=STEPS, dt_years=ONE_DAY)
    # Drift of -sigma^2/2 a year for ~55 years drives the mid far below one tick...
    assert states[-1].mid < float(TINY.tick_size) / 1000
    # ...yet the book stays one tick wide, at one and two ticks.
    assert (states[-1].bid, states[-1].ask) == (1, 2)
    assert (quotes[-1].bid, quotes[-1].ask) == (0.0001, 0.0002)


# --- determinism ---------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_the_same_seed_gives_the_identical_sequence(spec):
    assert run(spec, seed=7, steps=2_000, dt_years=ONE_SECOND) == run(
        spec, seed=7, steps=2_000, dt_years=ONE_SECOND
    )


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_different_seeds_give_different_sequences(spec):
    states_a, quotes_a = run(spec, seed=7, steps=2_000, dt_years=ONE_SECOND)
    states_b, quotes_b = run(spec, seed=8, steps=2_000, dt_years=ONE_SECOND)
    assert [s.mid for s in states_a] != [s.mid for s in states_b]
    assert quotes_a != quotes_b


# --- statistics ----------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_realised_volatility_of_the_latent_mid_matches_the_spec(spec):
    # The sample std of N i.i.d. normal log returns has a relative standard error of
    # about 1/sqrt(2N): 0.5% for N = 20,000. A 3% tolerance is ~6 standard errors,
    # loose enough for any seed, tight enough to catch a wrong sqrt(dt) or sigma.
    states, _ = run(spec, seed=2024, steps=STEPS, dt_years=ONE_SECOND)
    realised = log_return_vol([s.mid for s in states], ONE_SECOND)
    assert realised == pytest.approx(spec.volatility, rel=0.03)


# Not the tiny coin: its quoted mid is only a few ticks, so tick rounding (up to one
# tick, i.e. ~20% of its price) swamps any realistic per-step move.
@pytest.mark.parametrize("spec", [EQUITY, FX, CRYPTO], ids=["AAPL", "EUR/USD", "BTC-USD"])
def test_realised_volatility_of_the_quoted_mid_sampled_every_50_steps_matches_the_spec(spec):
    # The quoted mid (bid + ask) / 2 lies within one tick below the latent mid, a
    # noise of ~1e-5 of the price against a ~3e-4 move over 50 steps: its bias is well
    # under 1%. 1,000 samples give a relative standard error of 1/sqrt(2000) ~ 2.2%,
    # so 10% is ~4.5 standard errors.
    every = 50
    rng = random.Random(99)
    state = initial_state(spec, rng)
    mids = []
    for i in range(every * 1_000 + 1):
        if i % every == 0:
            q = quote_of(spec, state, TS + i)
            mids.append((q.bid + q.ask) / 2)
        state = step(spec, state, rng, ONE_SECOND)
    realised = log_return_vol(mids, every * ONE_SECOND)
    assert realised == pytest.approx(spec.volatility, rel=0.10)


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_next_interval_is_positive_with_mean_one_over_the_quote_rate(spec):
    # Exponential draws: the mean of 20,000 has a relative standard error of
    # 1/sqrt(20,000) ~ 0.7%; 3% is ~4 standard errors.
    rng = random.Random(5)
    draws = [next_interval(spec, rng) for _ in range(20_000)]
    assert min(draws) > 0
    assert statistics.fmean(draws) == pytest.approx(1 / spec.quote_rate, rel=0.03)


# --- rescale (an admin edits the tick size) -------------------------------------------


def with_tick(spec: InstrumentSpec, tick: str) -> InstrumentSpec:
    return InstrumentSpec(
        spec.symbol,
        Decimal(tick),
        spec.lot_size,
        spec.reference_price,
        spec.volatility,
        spec.quote_rate,
    )


def prices(spec: InstrumentSpec, state: MarketState) -> tuple[Decimal, Decimal, Decimal]:
    q = quote_of(spec, state, TS)
    return Decimal(repr(q.bid)), Decimal(repr(q.ask)), Decimal(repr(q.last))


RESCALES_FINER = [(EQUITY, "0.001"), (FX, "0.000001"), (CRYPTO, "0.0001"), (TINY, "0.00001")]


@pytest.mark.parametrize(
    ("spec", "new_tick"), RESCALES_FINER, ids=[s.symbol for s, _ in RESCALES_FINER]
)
def test_rescale_to_a_finer_tick_keeps_every_price_on_the_new_grid_within_one_new_tick(
    spec, new_tick
):
    new_spec = with_tick(spec, new_tick)
    states, _ = run(spec, seed=3, steps=2_000, dt_years=ONE_SECOND)
    for state in states:
        moved = rescale(new_spec, state, spec.tick_size)
        assert 1 <= moved.bid < moved.ask
        for old, new in zip(prices(spec, state), prices(new_spec, moved), strict=True):
            assert new % new_spec.tick_size == 0
            assert abs(new - old) <= new_spec.tick_size, (old, new)


RESCALES_COARSER = [(EQUITY, "0.05"), (FX, "0.0001"), (CRYPTO, "1"), (TINY, "0.0005")]


@pytest.mark.parametrize(
    ("spec", "new_tick"), RESCALES_COARSER, ids=[s.symbol for s, _ in RESCALES_COARSER]
)
def test_rescale_to_a_coarser_tick_keeps_an_uncrossed_book_within_one_new_tick(spec, new_tick):
    new_spec = with_tick(spec, new_tick)
    states, _ = run(spec, seed=3, steps=2_000, dt_years=ONE_SECOND)
    for state in states:
        moved = rescale(new_spec, state, spec.tick_size)
        assert 1 <= moved.bid < moved.ask
        for old, new in zip(prices(spec, state), prices(new_spec, moved), strict=True):
            assert new % new_spec.tick_size == 0
            assert abs(new - old) <= new_spec.tick_size, (old, new)


def test_rescale_moves_a_one_tick_book_outwards_when_both_sides_share_a_new_tick():
    # 0.98 / 0.99 at tick 0.01 -> 0.05: both round to 1.00; rounding to nearest and then
    # bumping the ask gave 1.00 / 1.05 (the ask moving 0.06). Outward: 0.95 / 1.00.
    state = MarketState(
        mid=0.985,
        bid=98,
        ask=99,
        bid_size=100,
        ask_size=100,
        last=98,
        last_size=100,
        volume=100,
    )
    new_spec = with_tick(EQUITY, "0.05")
    moved = rescale(new_spec, state, EQUITY.tick_size)
    new_bid, new_ask, _ = prices(new_spec, moved)
    assert (new_bid, new_ask) == (Decimal("0.95"), Decimal("1"))


def test_rescale_to_the_same_tick_changes_nothing():
    states, _ = run(EQUITY, seed=4, steps=500, dt_years=ONE_SECOND)
    assert all(rescale(EQUITY, s, EQUITY.tick_size) == s for s in states)
