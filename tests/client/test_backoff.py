"""Reconnect delays: exponential, capped, jittered within bounds, reproducible with a seed."""

from __future__ import annotations

import random

import pytest

from marketfeed_client import Backoff


def test_delays_double_up_to_the_maximum_and_stay_within_half_to_full_cap():
    backoff = Backoff(initial_s=0.5, factor=2.0, maximum_s=8.0, rng=random.Random(1))
    caps = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    delays = [backoff.next_delay() for _ in caps]
    for delay, cap in zip(delays, caps, strict=True):
        assert cap / 2 <= delay <= cap
    assert len(set(delays)) == len(delays)  # jittered, not a fixed ladder


def test_the_same_seed_gives_the_same_sequence_and_another_seed_another():
    def run(seed: int) -> list[float]:
        backoff = Backoff(rng=random.Random(seed))
        return [backoff.next_delay() for _ in range(6)]

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_reset_starts_again_from_the_initial_delay():
    backoff = Backoff(initial_s=1.0, maximum_s=60.0, rng=random.Random(3))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1.0


def test_a_very_long_outage_stays_at_the_maximum_without_overflow():
    backoff = Backoff(initial_s=0.5, maximum_s=30.0, rng=random.Random(5))
    backoff.attempt = 10_000
    assert 15.0 <= backoff.next_delay() <= 30.0


def test_jitter_for_going_away_is_between_zero_and_the_spread():
    backoff = Backoff(rng=random.Random(9))
    values = [backoff.jitter(1.5) for _ in range(200)]
    assert all(0 <= v <= 1.5 for v in values)
    assert min(values) < 0.3
    assert max(values) > 1.2
    assert backoff.attempt == 0  # "reconnect now" does not count as a failed attempt


@pytest.mark.parametrize(
    ("initial", "factor", "maximum"), [(0, 2, 30), (-1, 2, 30), (5, 2, 1), (0.5, 0.5, 30)]
)
def test_nonsense_parameters_are_refused(initial, factor, maximum):
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(initial_s=initial, factor=factor, maximum_s=maximum)
