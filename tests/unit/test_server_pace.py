"""feeds.deliver.server_pace: daphne's pass over its connections, every five seconds."""

from __future__ import annotations

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
