"""Reconnect delays: exponential back-off with jitter, the randomness injected."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays before the n-th consecutive reconnect attempt.

    Attempt n (from 0) waits a random time in ``[cap/2, cap]`` where
    ``cap = min(maximum_s, initial_s * factor**n)`` ("equal jitter"): the
    random half spreads a crowd of clients that lost the same server, the
    fixed half keeps one client from hammering a server that refuses it.
    ``reset()`` after a connection got as far as being subscribed.
    """

    initial_s: float = 0.5
    factor: float = 2.0
    maximum_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.maximum_s or self.factor < 1:
            raise ValueError("need 0 < initial_s <= maximum_s and factor >= 1")

    def cap(self, attempt: int) -> float:
        """The longest wait of attempt ``attempt`` (without jitter)."""
        # Exponent bounded so that a long outage cannot overflow the float.
        return min(self.maximum_s, self.initial_s * self.factor ** min(attempt, 64))

    def next_delay(self) -> float:
        """The wait before the next attempt; each call counts one attempt."""
        cap = self.cap(self.attempt)
        self.attempt += 1
        return self.rng.uniform(cap / 2, cap)

    def jitter(self, spread_s: float) -> float:
        """A wait in ``[0, spread_s]``: for "reconnect now, with jitter" (close 1001)."""
        return self.rng.uniform(0, spread_s)

    def reset(self) -> None:
        self.attempt = 0
