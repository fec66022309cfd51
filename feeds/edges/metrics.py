"""``GET /metrics``: the process's figures in Prometheus' text format.

Most figures are read at scrape time from state the feed keeps anyway (the
hub's registry, each outbox's conflation count, the ticker's publish count),
so the hot path pays nothing for them. Two things are counted as they happen:
errors sent to clients, by code (rare by nature), and each quote's age when it
reaches this process (one histogram observation per quote per process, not
per subscriber). The server adapter's state (feeds/deliver/server.py) is
here too: ``marketfeed_server_feature{feature=...}`` 1 for each of what ASGI
does not carry that is in effect, ``marketfeed_server_degraded`` 1 when daphne
serves without one of them, ``marketfeed_server_missing{piece=...}`` naming
what a dependency upgrade took away, and the flushes written to clients'
transports directly.

Every process has its own figures: scrape each daphne directly (not through
the load balancer) and ``runticker --metrics-port`` for the ticker.

Who may read: a staff user (session or ``Authorization: Token``), or anyone
presenting ``Authorization: Bearer <FEED_METRICS_TOKEN>`` when that setting is
set (a Prometheus scrape job). Everyone else gets 401 or 403.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from feeds.deliver import process, server
from feeds.deliver.counters import REGISTRY


class FeedCollector(Collector):
    """Figures read from the running feed at scrape time (this event loop's hub and ticker)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop

    def collect(self) -> Iterator[Any]:
        owner = process.current(self.loop)
        hub = owner.hub if owner is not None else None
        connections = GaugeMetricFamily(
            "marketfeed_connections", "Open client connections, by kind.", labels=["kind"]
        )
        kinds: dict[str, int] = {"websocket": 0}
        subscriptions = symbols = received = conflated = sent = 0
        if hub is not None:
            for conn in hub.connections:
                kind = getattr(conn, "kind", "websocket")
                kinds[kind] = kinds.get(kind, 0) + 1
                conflated += conn.outbox.conflated
                sent += conn.outbox.quotes_sent
            subscriptions = sum(len(members) for members in hub.members.values())
            symbols = len(hub.members)
            received = hub.quotes_received
            conflated += hub.retired_conflated
            sent += hub.retired_quotes_sent
        for kind, count in sorted(kinds.items()):
            connections.add_metric([kind], count)
        yield connections
        yield GaugeMetricFamily(
            "marketfeed_subscriptions", "Subscriptions (connection and symbol pairs).",
            value=subscriptions,
        )
        yield GaugeMetricFamily(
            "marketfeed_symbols", "Symbols with a subscriber here.", value=symbols
        )
        yield CounterMetricFamily(
            "marketfeed_quotes_received", "Quotes this process received from the channel layer.",
            value=received,
        )
        yield CounterMetricFamily(
            "marketfeed_quotes_delivered", "Quotes written to clients.", value=sent
        )
        yield CounterMetricFamily(
            "marketfeed_quotes_conflated",
            "Quotes skipped for a slow client (replaced by a newer one): its seq gaps.",
            value=conflated,
        )
        if owner is not None:
            yield from collector_metrics(owner.collector)
        yield from server_metrics()
        ticker = owner.ticker if owner is not None else None
        if ticker is not None:
            yield from ticker_metrics(ticker)


def collector_metrics(collector: Any) -> Iterator[Any]:
    """The garbage collector's pauses (feeds/deliver/collector.py)."""
    held = CounterMetricFamily(
        "marketfeed_gc_pause_seconds",
        "Time the event loop was held by garbage collection: passes and full reclaims.",
        labels=["kind"],
    )
    for kind, seconds in sorted(collector.seconds.items()):
        held.add_metric([kind], seconds)
    yield held
    yield CounterMetricFamily(
        "marketfeed_gc_reclaims", "Full collections of every object, frozen or not.",
        value=collector.reclaims,
    )


def server_metrics() -> Iterator[Any]:
    """What the server underneath provides here (``feeds.deliver.server.mode``)."""
    state = server.mode()
    features = GaugeMetricFamily(
        "marketfeed_server_feature",
        "1 while the server underneath provides this feature (fast_write, back_pressure, ...).",
        labels=["feature"],
    )
    for feature in server.FEATURES:
        features.add_metric([feature], 1 if state[feature] else 0)
    yield features
    yield GaugeMetricFamily(
        "marketfeed_server_degraded",
        "1 when daphne serves but a piece of it, Twisted or autobahn the feed needs is missing.",
        value=1 if state["degraded"] else 0,
    )
    missing = GaugeMetricFamily(
        "marketfeed_server_missing", "A piece of daphne, Twisted or autobahn found missing.",
        labels=["piece"],
    )
    for piece in state["missing"]:
        missing.add_metric([piece], 1)
    yield missing
    yield CounterMetricFamily(
        "marketfeed_server_direct_writes",
        "Flushes written to a client's transport directly, not through ASGI and autobahn.",
        value=server.direct_writes(),
    )


def ticker_metrics(ticker: Any) -> Iterator[Any]:
    yield CounterMetricFamily(
        "marketfeed_quotes_published", "Quotes the ticker in this process published.",
        value=ticker.published,
    )
    yield GaugeMetricFamily(
        "marketfeed_instruments_ticking", "Active instruments the ticker generates quotes for.",
        value=len(ticker.books),
    )


def exposition(loop: asyncio.AbstractEventLoop | None = None) -> bytes:
    """The whole text exposition: the counters plus this loop's feed figures."""
    registry = CollectorRegistry()
    registry.register(_Chain(REGISTRY))
    registry.register(FeedCollector(loop))
    return generate_latest(registry)


class _Chain(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self.registry.collect()


class _LeaderCollector(Collector):
    """runticker's figures: leadership and what its current ticker published."""

    def __init__(self, leader: Any) -> None:
        self.leader = leader

    def collect(self) -> Iterator[Any]:
        ticker = self.leader.ticker
        yield GaugeMetricFamily(
            "marketfeed_ticker_leader", "1 while this runticker holds the lease and publishes.",
            value=1 if ticker is not None else 0,
        )
        if ticker is not None:
            yield from ticker_metrics(ticker)


def serve_leader_metrics(leader: Any, addr: str, port: int) -> None:
    """Serve runticker's metrics from a thread (prometheus_client's own small HTTP server)."""
    registry = CollectorRegistry()
    registry.register(_Chain(REGISTRY))
    registry.register(_LeaderCollector(leader))
    start_http_server(port, addr=addr, registry=registry)
