"""One unit for every wait, scaled on slow machines (like websockets' tests)."""

from __future__ import annotations

import os

TIMEOUT_FACTOR = float(os.environ.get("MARKETFEED_TEST_TIMEOUT_FACTOR", "1"))


def timeout(seconds: float = 5.0) -> float:
    return seconds * TIMEOUT_FACTOR
