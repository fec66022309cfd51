"""``manage.py runticker``: the ticker as its own process, for scale-out on Redis.

Run one or more; a lease in Redis makes one the leader and the others hot
standbys (``feeds.publish.leader``). SIGTERM or Ctrl-C gives the lease up at once, so
a standby takes over without waiting for it to expire.

``--metrics-port`` serves this process's Prometheus figures (published quotes,
leadership, process) on ``--metrics-addr``, loopback by default: that small
server has no authentication, so expose it only where the scraper lives.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from deploy.procs import port_number
from feeds.deliver.process import freeze_startup_objects
from feeds.edges.metrics import serve_leader_metrics
from feeds.publish.build import build_ticker, get_store
from feeds.publish.leader import Leader
from feeds.publish.redis_connect import check_reachable

logger = logging.getLogger("feeds.publish.ticker")


class Command(BaseCommand):
    help = "Run the quote generator (leader or hot standby) until SIGTERM or Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--metrics-port", type=port_number, default=None,
            help="serve Prometheus metrics on this port (default: none)",
        )
        parser.add_argument(
            "--metrics-addr", default="127.0.0.1",
            help="address of the metrics server (default 127.0.0.1; it has no authentication)",
        )

    def handle(self, *args: object, **options: object) -> None:
        if not settings.REDIS_URL:
            raise CommandError(
                "runticker publishes through Redis: set REDIS_URL or REDIS_SENTINELS (the "
                "embedded default already runs a ticker inside the server process)"
            )
        check_reachable(settings.REDIS_URL, sentinel=settings.REDIS_SENTINEL)  # one clear line
        freeze_startup_objects()
        asyncio.run(self._run(options["metrics_port"], str(options["metrics_addr"])))

    async def _run(self, metrics_port: int | None, metrics_addr: str) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        store = get_store()
        leader = Leader(store=store, build=build_ticker, lease_s=settings.FEED_LEASE_S)  # type: ignore[arg-type]
        logger.info("runticker %s: lease %.1f s", leader.holder, settings.FEED_LEASE_S)
        if metrics_port is not None:
            try:
                serve_leader_metrics(leader, metrics_addr, metrics_port)
            except OSError as exc:
                raise CommandError(
                    f"--metrics-port {metrics_port}: cannot listen ({exc.strerror})"
                ) from None
            logger.info("runticker metrics on http://%s:%d/metrics", metrics_addr, metrics_port)
        await leader.run(stop)
        logger.info("runticker %s stopped", leader.holder)
