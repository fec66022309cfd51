"""Shared test fixtures: a fresh channel layer, store and hub for every test."""

from __future__ import annotations

import os

import pytest

# One unit for every wait, scaled on slow machines (like websockets' tests).
TIMEOUT_FACTOR = float(os.environ.get("MARKETFEED_TEST_TIMEOUT_FACTOR", "1"))


def timeout(seconds: float = 5.0) -> float:
    return seconds * TIMEOUT_FACTOR


@pytest.fixture(autouse=True)
def _fresh_feed_state(settings):
    """No embedded ticker in-process; a new layer and store per test."""
    from channels.layers import channel_layers

    from feeds.store import reset_store

    settings.FEED_TICKER = "off"
    channel_layers.backends.clear()
    reset_store()
    yield
    channel_layers.backends.clear()
    reset_store()
