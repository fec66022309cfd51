"""One ticker, exactly: the leader lease that ``runticker`` runs under.

Every ``runticker`` process tries to take a lease in Redis (``mf:leader``, a
key with a TTL). The one that holds it runs the ticker and renews the lease
every third of its life; the others are hot standbys that try again every
quarter of it, so one takes over within about one lease time after the
leader dies, ``kill -9`` included.

Two safety nets keep a stalled leader (paused, cut off) from publishing beside
the new one:

- the fence: the ticker's every save names the lease it holds, and the store
  refuses it atomically once another process holds the lease (``Fenced``);
- the clock: a leader that could not renew for a whole lease time stops its
  ticker by itself.

``seq`` continues across a takeover because a new leader's ticker starts from
the store, which the old one wrote before each publish.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Protocol

from feeds.publish.outage import STORE, outage
from feeds.publish.ticker import Ticker

logger = logging.getLogger("feeds.publish.ticker")

RETRY_S = 1.0  # after Redis or the database failed us


class LeaseStore(Protocol):
    async def lease_take(self, holder: str, ttl_s: float) -> bool: ...

    async def lease_release(self, holder: str) -> None: ...

    async def lease_holder(self) -> str | None: ...


def holder_name() -> str:
    """Who we are, in the lease and in the logs: host, pid and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class Leader:
    def __init__(
        self,
        *,
        store: LeaseStore,
        build: Callable[[str], Ticker],
        lease_s: float,
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.build = build  # fence -> a ticker that saves under that fence
        self.lease_s = lease_s
        self.holder = holder or holder_name()
        self.ticker: Ticker | None = None
        self.terms = 0  # how many times this process became the leader
        self.leading = asyncio.Event()
        self.standing_by = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Lead or stand by until ``stop`` is set; then give the lease up at once."""
        standby_said = False
        try:
            while not stop.is_set():
                try:
                    took = await self.store.lease_take(self.holder, self.lease_s)
                except Exception as exc:
                    outage(STORE).failed("lease", exc)
                    await _wait(stop, RETRY_S)
                    continue
                if outage(STORE).active:
                    outage(STORE).recovered("lease")
                if took:
                    standby_said = False
                    await self._lead(stop)
                    continue
                self.standing_by.set()
                if not standby_said:
                    other = await _quietly(self.store.lease_holder())
                    logger.info("standby: %s holds the ticker lease; %s waits", other, self.holder)
                    standby_said = True
                await _wait(stop, self.lease_s / 4)
        finally:
            await _quietly(self.store.lease_release(self.holder))

    async def _lead(self, stop: asyncio.Event) -> None:
        ticker = self.build(self.holder)
        try:
            await ticker.start()
        except Exception as exc:
            logger.error("leader %s: the ticker could not start (%s); retrying", self.holder, exc)
            await _quietly(self.store.lease_release(self.holder))
            await _wait(stop, RETRY_S)
            return
        self.ticker, self.terms = ticker, self.terms + 1
        self.standing_by.clear()
        self.leading.set()
        logger.info("leader: %s holds the ticker lease and publishes", self.holder)
        try:
            await self._hold(stop, ticker)
        finally:
            self.leading.clear()
            self.ticker = None
            await ticker.stop()

    async def _hold(self, stop: asyncio.Event, ticker: Ticker) -> None:
        renewed = time.monotonic()
        while True:
            if await _wait_any(stop, ticker.fenced, self.lease_s / 3):
                if ticker.fenced.is_set():
                    logger.warning("leader %s: fenced off by the store; standing by", self.holder)
                return
            try:
                ours = await self.store.lease_take(self.holder, self.lease_s)
            except Exception as exc:
                outage(STORE).failed("lease renewal", exc)
                if time.monotonic() - renewed > self.lease_s:
                    # The outage line said why; this is what it costs.
                    logger.info(
                        "leader %s: no renewal for a lease time; stepping down", self.holder
                    )
                    return
                continue
            if not ours:
                logger.warning(
                    "leader %s: the lease went to another ticker; standing by", self.holder
                )
                return
            renewed = time.monotonic()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def _wait_any(stop: asyncio.Event, fenced: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for either event; True if one was set."""
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(fenced.wait())]
    done, pending = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return bool(done)


async def _quietly(aw):  # type: ignore[no-untyped-def]
    try:
        return await aw
    except Exception:
        logger.debug("lease: best-effort call failed", exc_info=True)
        return None
