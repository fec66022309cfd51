"""feeds.deliver.server_pace: daphne's pass over its connections, every five seconds."""

from __future__ import annotations

import itertools
from typing import Any

from feeds.deliver.server_pace import EVERY_S, pace_application_checker


class Server:
    """daphne's Server as far as its checker goes: it reschedules itself a second on."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.passes: list[float] = []

    def application_checker(self) -> None:
        self.passes.append(self.clock.now)
        self.clock.call_later(1, self.application_checker)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.due: list[tuple[float, Any]] = []

    def call_later(self, delay: float, fn: Any) -> None:
        self.due.append((self.now + delay, fn))

    def run_until(self, end: float) -> None:
        while self.due:
            self.due.sort(key=lambda item: item[0])
            at, fn = self.due[0]
            if at > end:
                return
            self.due.pop(0)
            self.now = at
            self.call(fn)

    def call(self, fn: Any) -> None:
        fn()


def test_the_pass_runs_every_five_seconds_once_paced():
    clock = Clock()
    server = Server(clock)
    clock.call_later(1, server.application_checker)  # as daphne starts it: bound to the original
    clock.run_until(2.5)
    assert server.passes == [1, 2]
    assert pace_application_checker(server, clock.call_later)
    assert pace_application_checker(server, clock.call_later)  # once per server
    clock.run_until(30)
    assert server.passes == [1, 2, 3, *(3 + k * EVERY_S for k in range(1, 6))]


def test_a_server_without_the_pass_is_left_alone():
    class Other:
        pass

    other = Other()
    assert not pace_application_checker(other, lambda delay, fn: None)
    assert not hasattr(other, "application_checker")


def test_the_connection_tables_of_paced_servers_are_counted():
    from feeds.deliver import server_pace

    clock = Clock()
    server = Server(clock)
    server.connections = {"a": {}, "b": {}}  # type: ignore[attr-defined]
    before = server_pace.tracked_connections() or 0
    pace_application_checker(server, clock.call_later)
    assert server_pace.tracked_connections() == before + 2
    del server.connections["a"]  # type: ignore[attr-defined]
    assert server_pace.tracked_connections() == before + 1


class Protocol:
    def __init__(self, clock: Clock, fails: bool = False) -> None:
        self.clock, self.fails = clock, fails
        self.checked: list[float] = []

    def check_timeouts(self) -> None:
        self.checked.append(self.clock.now)
        if self.fails:
            raise RuntimeError("a check that raises")


class SweepingServer:
    """daphne's timeout round: every connection's checks, then itself two seconds on."""

    def __init__(self, clock: Clock, protocols: list[Protocol]) -> None:
        self.clock = clock
        self.connections = {p: {} for p in protocols}
        self.turns: list[int] = []

    def timeout_checker(self) -> None:
        for protocol in list(self.connections):
            protocol.check_timeouts()
        self.clock.call_later(2, self.timeout_checker)


class TwistedClock(Clock):
    """As Twisted's reactor: a delayed call that raises is logged, the others go on.

    ``per_turn``: how many of ``protocols``' checks each delayed call made.
    """

    def __init__(self) -> None:
        super().__init__()
        self.errors = 0
        self.protocols: list[Protocol] = []
        self.per_turn: list[int] = []

    def call(self, fn: Any) -> None:
        before = sum(len(p.checked) for p in self.protocols)
        try:
            fn()
        except RuntimeError:
            self.errors += 1
        self.per_turn.append(sum(len(p.checked) for p in self.protocols) - before)


def test_the_timeout_round_runs_in_tenths_and_still_checks_each_connection_every_two_seconds():
    from feeds.deliver.server_pace import SWEEP_S, slice_timeout_checker

    clock = TwistedClock()
    protocols = [Protocol(clock) for _ in range(95)]
    clock.protocols = protocols
    server = SweepingServer(clock, protocols)
    clock.call_later(2, server.timeout_checker)  # daphne's first round, already scheduled
    assert slice_timeout_checker(server, clock.call_later)
    assert slice_timeout_checker(server, clock.call_later)  # once per server
    clock.run_until(20.05)
    assert clock.per_turn[0] == 95  # daphne's own round, scheduled before the slicing
    assert max(clock.per_turn[1:]) == 10  # then never more than a tenth (95 / 10, rounded up)
    for protocol in protocols:
        sliced = protocol.checked[1:]  # after daphne's own round
        assert {round(b - a, 6) for a, b in itertools.pairwise(sliced)} == {SWEEP_S}
        assert sliced[0] < 4 + SWEEP_S  # the first sliced round ends on time too
        assert len(sliced) >= 8


def test_a_check_that_raises_does_not_end_the_rounds_and_gone_connections_are_skipped():
    from feeds.deliver.server_pace import slice_timeout_checker

    clock = TwistedClock()
    bad, gone, kept = Protocol(clock, fails=True), Protocol(clock), Protocol(clock)
    clock.protocols = [bad, gone, kept]
    server = SweepingServer(clock, [bad, gone, kept])
    slice_timeout_checker(server, clock.call_later)
    clock.call_later(0, server.timeout_checker)  # daphne calls the attribute: the slices start
    clock.run_until(1.0)
    del server.connections[gone]
    checked_before = len(gone.checked)
    clock.run_until(10.0)
    assert clock.errors >= 4
    assert len(kept.checked) >= 5
    assert len(gone.checked) == checked_before
