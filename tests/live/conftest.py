"""Fixtures of the live tests borrowed from the fault tests."""

from tests.faults.conftest import feed_server  # noqa: F401 (fixture)
