"""Per-connection request rate limiting (feeds/core/limits.py), on an injected clock."""

from __future__ import annotations

from feeds.core.limits import TokenBucket

# Binary fractions throughout, so the clock arithmetic is exact.
RATE = 4.0  # one token every 0.25 s
BURST = 8


def drained(now: float = 100.0) -> TokenBucket:
    bucket = TokenBucket(rate=RATE, burst=BURST, now=now)
    assert all(bucket.take(now) for _ in range(BURST))
    return bucket


def test_a_new_bucket_allows_a_burst_at_once_then_refuses():
    bucket = TokenBucket(rate=RATE, burst=BURST, now=0.0)
    results = [bucket.take(0.0) for _ in range(BURST + 3)]
    assert results == [True] * BURST + [False] * 3


def test_a_drained_bucket_refills_one_token_per_one_over_rate_seconds():
    bucket = drained(now=100.0)
    assert not bucket.take(100.0)
    assert not bucket.take(100.125)  # half a token
    assert bucket.take(100.25)  # one token
    assert not bucket.take(100.25)
    assert bucket.take(100.75)
    assert bucket.take(100.75)
    assert not bucket.take(100.75)


def test_refused_requests_do_not_delay_the_refill():
    bucket = drained(now=0.0)
    assert not any(bucket.take(t / 64) for t in range(1, 16))  # up to 15/64 s
    assert bucket.take(0.25)


def test_the_bucket_never_holds_more_than_burst_however_long_it_idles():
    bucket = drained(now=0.0)
    later = 1_000_000.0
    results = [bucket.take(later) for _ in range(BURST + 1)]
    assert results == [True] * BURST + [False]


def test_a_full_bucket_does_not_bank_tokens_while_in_use_below_the_rate():
    bucket = TokenBucket(rate=RATE, burst=BURST, now=0.0)
    # One request a second (below the rate of 4) for a minute keeps it full, no more.
    assert all(bucket.take(float(t)) for t in range(60))
    assert [bucket.take(60.0) for _ in range(BURST + 1)] == [True] * BURST + [False]


def test_over_a_long_run_the_allowed_rate_is_burst_plus_rate_times_elapsed():
    bucket = TokenBucket(rate=RATE, burst=BURST, now=0.0)
    # 64 requests a second for 100 s, far above the rate.
    allowed = sum(bucket.take(i / 64) for i in range(100 * 64 + 1))
    assert allowed == BURST + int(RATE * 100)
