"""One log line per outage, not one per failed attempt.

Loops that retry a dependency (Redis, the database) report each failure and
each success here. The first failure of an outage is one WARNING line naming
what is down and why; further failures are DEBUG; the first success after it
is one INFO line saying how long it lasted. The parts of one process that use
the same dependency share one ``Outage`` (``outage(STORE)``), so a Redis
restart is one warning per process, however many loops noticed it.

A failure more than ``QUIET_GAP_S`` after the previous one starts a new
outage even if nobody reported a success in between (a process that saw no
traffic to prove the recovery). A failure within ``RELAPSE_S`` of a recovery
is the same outage still ending (one client of the process reconnected, another
still held a dead connection): it is not announced again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Retrying loops back off for at most 5 s; a longer silence means it was over.
QUIET_GAP_S = 8.0
RELAPSE_S = 5.0


class Outage:
    __slots__ = ("_clock", "_ended", "_last_failure", "_since", "what")

    def __init__(self, what: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self._clock = clock
        self._since: float | None = None
        self._last_failure = 0.0
        self._ended: tuple[float, float] | None = None  # (start, end) of the last outage

    @property
    def active(self) -> bool:
        return self._since is not None

    def failed(self, who: str, exc: BaseException | str) -> None:
        """``who`` (a loop's name) could not reach the dependency."""
        now = self._clock()
        reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        if self._since is None and self._ended is not None and now - self._ended[1] < RELAPSE_S:
            self._since = self._ended[0]  # the last outage, still ending
            self._last_failure = now
        if self._since is None or now - self._last_failure > QUIET_GAP_S:
            self._since = now
            logger.warning(
                "%s unreachable (%s, seen by %s); retrying, quietly until it is back",
                self.what, reason, who,
            )
        else:
            logger.debug("%s still unreachable (%s, seen by %s)", self.what, reason, who)
        self._last_failure = now

    def recovered(self, who: str) -> None:
        """``who`` reached the dependency again; says so once per outage."""
        if self._since is not None:
            now = self._clock()
            logger.info(
                "%s reachable again after %.1f s (seen by %s)", self.what, now - self._since, who
            )
            self._ended = (self._since, now)
            self._since = None


_outages: dict[str, Outage] = {}


def outage(what: str) -> Outage:
    """The process's shared ``Outage`` of one dependency."""
    found = _outages.get(what)
    if found is None:
        found = _outages[what] = Outage(what)
    return found


class LayerOutageFilter(logging.Filter):
    """For channels-redis' logger: its receive task logs a traceback a second while
    Redis is away; turn those into this process's one line per Redis outage."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.exc_info and record.exc_info[1] is not None:
            outage(STORE).failed("channel layer", record.exc_info[1])
            return False
        return True


# The dependencies, as the log names them (both are Redis in scale-out).
STORE = "the quote store / channel layer"
DATABASE = "the database"
