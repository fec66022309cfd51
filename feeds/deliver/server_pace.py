"""daphne's pass over all its connections: every five seconds instead of every second.

daphne's ``Server.application_checker`` visits every connection once a
second: it drops the entry of a connection whose socket and application have
both finished, logs an application's exception, and cancels an application
that outlives its connection by ``application_close_timeout`` (10 s). With
5,000 idle connections a worker, that pass was a sixth of the worker's CPU in
a profile, and at 16,000 it holds the event loop for tens of milliseconds
each second, quotes waiting behind it.

Nothing of the feed waits on that pass: a connection's own teardown runs when
its socket closes. Run every five seconds, a finished connection's entry goes
up to five seconds later, and the close timeout is enforced within five
seconds of its due time instead of one.

daphne's other pass, ``Server.timeout_checker``, calls every connection's
``check_timeouts`` every two seconds: the handshake deadline, and the
WebSocket ping once ``--ping-interval`` has passed. At 16,500 connections a
worker that pass was 23 % of the worker's CPU in the quote window (py-spy),
all of it in one turn of the loop; with six workers on two cores the
100,000-connection run's quote latency rose every other second
(docs/PERFORMANCE.md, "100,000 connections").
``slice_timeout_checker`` keeps the two-second round and cuts it into ten
slices a fifth of a second apart: each connection is still checked every
two seconds, and no turn holds more than a tenth of them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

EVERY_S = 5.0
MARK = "_marketfeed_paced"
SWEEP_S = 2.0  # daphne's round over every connection's timeouts
SLICES = 10
SLICED = "_marketfeed_sliced"

CallLater = Callable[[float, Callable[[], None]], Any]

_paced: weakref.WeakSet[Any] = weakref.WeakSet()  # the servers paced in this process


def tracked_connections() -> int | None:
    """Entries in the connection tables of this process's daphne servers (None: no server).

    HTTP requests and WebSockets, open or finished but not yet reaped by the
    pass: a connection long gone that stays here keeps all its objects alive.
    """
    if not _paced:
        return None
    return sum(len(getattr(server, "connections", ())) for server in _paced)


def _reactor_call_later() -> CallLater:
    from twisted.internet import reactor  # daphne's, installed by the time a client connects

    return reactor.callLater


def pace_application_checker(server: Any, call_later: CallLater | None = None) -> bool:
    """Make ``server``'s checker run every ``EVERY_S``; True once it does.

    daphne's checker schedules itself one second on through the attribute, so
    that attribute becomes a wait of the remaining seconds. A server without
    the checker is left as it is (False).
    """
    if getattr(server, MARK, False):
        return True
    checker = getattr(type(server), "application_checker", None)
    if not callable(checker):
        return False
    call_later = call_later or _reactor_call_later()

    def run() -> None:
        checker(server)  # daphne's pass; it calls ``wait`` a second from now

    def wait() -> None:
        call_later(EVERY_S - 1, run)

    server.application_checker = wait
    setattr(server, MARK, True)
    _paced.add(server)
    return True


def slice_timeout_checker(server: Any, call_later: CallLater | None = None) -> bool:
    """Run ``server``'s timeout round as ``SLICES`` slices over ``SWEEP_S``; True once it does.

    The next slice is scheduled before this one runs, so a connection whose
    check raises (logged by Twisted) does not end the rounds, as it would
    daphne's. A connection gone from the table since its round began is skipped.
    """
    if getattr(server, SLICED, False):
        return True
    connections = getattr(server, "connections", None)
    if not isinstance(connections, dict) or not callable(
        getattr(type(server), "timeout_checker", None)
    ):
        return False
    call_later = call_later or _reactor_call_later()
    gap = SWEEP_S / SLICES
    todo: list[Any] = []
    at = 0

    def step() -> None:
        nonlocal todo, at
        call_later(gap, step)
        if at >= len(todo):
            todo, at = list(connections), 0
        share = -(-len(todo) // SLICES)  # a tenth, rounded up: the round ends on time
        mine, at = todo[at : at + share], at + share
        for protocol in mine:
            if protocol in connections:
                protocol.check_timeouts()

    started = False

    def first() -> None:
        """daphne's own call, already scheduled: from here on the slices run instead."""
        nonlocal started
        if not started:
            started = True
            step()

    server.timeout_checker = first
    setattr(server, SLICED, True)
    return True
