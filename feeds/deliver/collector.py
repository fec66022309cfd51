"""The cyclic garbage collector's pace in a server process that holds many connections.

Python's collector walks every tracked object of the oldest generation in a
full collection, and starts one whenever the objects that survived into that
generation have grown by a quarter since the last. A worker taking on
connections grows exactly that way, so the full collections come one after
another, each longer than the one before: towards 16,700 connections a
worker, one held the worker's loop for up to 5.2 s (1.4 s of its CPU), and
collections took 89 CPU-s over six workers while 100,000 clients connected
(docs/PERFORMANCE.md, "Garbage collection"). Every quote and halt in flight
waits out such a pause.

So the process owner runs one ``Collector``:

- every ``FEED_GC_PASS_S`` a *pass* collects what arrived since the last pass
  (the frozen objects are not walked) and freezes what survived: a pass
  costs what a second of arrivals costs, however many connections are open;
- cyclic garbage among frozen objects (above all the connections that closed
  after their first second) waits for a *reclaim*: unfreeze, collect all,
  freeze again. One runs once the connections closed since the last reclaim
  reach a quarter of those open (at least ``RECLAIM_MIN_CLOSED``), so that
  the garbage of closed connections stays a fraction of the live ones, and
  at the latest every ``FEED_GC_RECLAIM_S``.

Objects freed by their reference count (almost all of a quote's) are freed
at once, frozen or not; freezing only defers the collection of cycles.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

RECLAIM_MIN_CLOSED = 1_000  # closed connections before a reclaim, with few open
LONG_PAUSE_S = 0.5  # a collection that holds the loop this long is logged as a warning


@dataclass(slots=True)
class Pause:
    """One collection: how long it held the loop, and how many objects it freed."""

    seconds: float
    collected: int


class Collector:
    def __init__(
        self,
        *,
        open_connections: Callable[[], int],
        pass_s: float,
        reclaim_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.open_connections = open_connections
        self.pass_s = pass_s
        self.reclaim_s = reclaim_s
        self.clock = clock
        self.closed = 0  # connections closed since the last reclaim
        self.seconds = {"pass": 0.0, "reclaim": 0.0}  # time the loop was held, by kind
        self.reclaims = 0
        self.last_reclaim: Pause | None = None
        self._reclaimed_at = clock()

    def connection_closed(self) -> None:
        self.closed += 1

    def reclaim_due(self) -> bool:
        if self.clock() - self._reclaimed_at >= self.reclaim_s:
            return True
        return self.closed >= max(RECLAIM_MIN_CLOSED, self.open_connections() // 4)

    def run_pass(self) -> Pause:
        """Collect what arrived since the last pass; freeze what survived.

        (Never ``gc.get_freeze_count()`` here: it walks every frozen object.)
        """
        started = time.perf_counter()
        collected = gc.collect()
        gc.freeze()
        pause = Pause(time.perf_counter() - started, collected)
        self.seconds["pass"] += pause.seconds
        return pause

    def reclaim(self) -> Pause:
        """Collect everything, frozen or not, and freeze what survived."""
        started = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        pause = Pause(time.perf_counter() - started, collected)
        self.seconds["reclaim"] += pause.seconds
        self.reclaims += 1
        self.last_reclaim = pause
        self.closed = 0
        self._reclaimed_at = self.clock()
        return pause

    def step(self) -> Pause:
        """One turn of the loop: a reclaim when one is due, else a pass.

        Either one that held the loop ``LONG_PAUSE_S`` or more is a warning:
        every quote and handshake in flight waited that long.
        """
        if not self.reclaim_due():
            pause = self.run_pass()
            if pause.seconds >= LONG_PAUSE_S:
                logger.warning(
                    "gc: a pass held the loop %.0f ms (%d objects freed, %d connections open)",
                    pause.seconds * 1000,
                    pause.collected,
                    self.open_connections(),
                )
            return pause
        closed = self.closed
        pause = self.reclaim()
        logger.log(
            logging.WARNING if pause.seconds >= LONG_PAUSE_S else logging.INFO,
            "gc: reclaim after %d closed connections held the loop %.0f ms "
            "(%d objects freed, %d connections open)",
            closed,
            pause.seconds * 1000,
            pause.collected,
            self.open_connections(),
        )
        return pause

    async def run(self) -> None:
        """Step every ``pass_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.pass_s)
            self.step()
