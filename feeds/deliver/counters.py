"""The two figures the feed counts as they happen; the rest is read at scrape time.

Errors sent to clients, by code (rare by nature), and each quote's age when
it reaches this process (one observation per quote per process, not per
subscriber). ``feeds.edges.metrics`` exposes them with everything else.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

ERRORS = Counter(
    "marketfeed_errors",
    "Error messages sent to clients, by protocol error code.",
    ["code"],
    registry=REGISTRY,
)
# From the quote's ts (set by the ticker as it generates it) to its arrival at
# this process's hub: the ticker's lateness plus the channel layer's transit.
TICKER_LAG = Histogram(
    "marketfeed_ticker_lag_seconds",
    "Age of each quote when it reached this server process.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
_observe_lag = TICKER_LAG.observe
_TS_FIELD = '"ts":'


def count_error(code: str) -> None:
    ERRORS.labels(code=code).inc()


def quote_arrived(text: str) -> None:
    """Record the age of one quote, from the ``ts`` at the end of its pre-encoded text."""
    at = text.rfind(_TS_FIELD)
    if at < 0:
        return
    end = text.find(",", at)
    if end < 0:
        end = text.find("}", at)
    try:
        ts_us = int(text[at + len(_TS_FIELD) : end])
    except ValueError:
        return
    _observe_lag(max(0.0, time.time() - ts_us / 1e6))
