"""The client's tests reuse the fault tests' own-server fixture (a daphne each test starts)."""

from __future__ import annotations

from tests.faults.conftest import feed_server

__all__ = ["feed_server"]
