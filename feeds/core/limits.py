"""Per-connection request rate limiting. Plain Python; time is passed in."""

from __future__ import annotations


class TokenBucket:
    """``rate`` requests a second on average, up to ``burst`` at once.

    Starts full, so a client may send its first ``burst`` requests at once.
    """

    __slots__ = ("_level", "_stamp", "burst", "rate")

    def __init__(self, *, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._level = float(burst)
        self._stamp = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one; False means the request is over the limit."""
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._level = min(float(self.burst), self._level + elapsed * self.rate)
        if self._level >= 1.0:
            self._level -= 1.0
            return True
        return False
