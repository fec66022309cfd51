"""The collector's pace: short passes over new objects, full reclaims when garbage is likely."""

from __future__ import annotations

import gc
import logging
import weakref

import pytest

from feeds.deliver import collector as collector_module
from feeds.deliver.collector import RECLAIM_MIN_CLOSED, Collector


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def unfrozen():
    """Whatever a test freezes is handed back to the collector afterwards."""
    yield
    gc.unfreeze()


def collector(open_connections: int = 0, clock: list[float] | None = None) -> Collector:
    now = clock or [0.0]
    return Collector(
        open_connections=lambda: open_connections, pass_s=1.0, reclaim_s=600.0,
        clock=lambda: now[0],
    )


def cycle() -> weakref.ref[Node]:
    return weakref.ref(Node())


def test_a_pass_frees_cycles_made_since_the_last_pass(unfrozen):
    pace = collector()
    gone = cycle()
    pause = pace.run_pass()
    assert gone() is None
    assert pause.collected >= 1
    assert pace.seconds["pass"] > 0


def test_a_pass_freezes_survivors_so_the_next_pass_does_not_walk_them(unfrozen):
    pace = collector()
    kept = [Node() for _ in range(1000)]
    pace.run_pass()
    frozen = gc.get_freeze_count()
    assert frozen >= 1000
    assert all(gc.is_tracked(node) for node in kept)
    assert not any(node in gc.get_objects() for node in kept[:3])  # out of every generation


def test_a_cycle_that_became_garbage_after_its_pass_waits_for_a_reclaim(unfrozen):
    pace = collector()
    node = Node()
    later = weakref.ref(node)
    pace.run_pass()  # node is frozen alive
    del node
    pace.run_pass()
    assert later() is not None  # frozen: a pass does not see it
    pause = pace.reclaim()
    assert later() is None
    assert pause.collected >= 1
    assert pace.reclaims == 1


def test_a_reclaim_is_due_once_a_quarter_of_the_open_connections_closed(unfrozen):
    pace = collector(open_connections=8_000)
    for _ in range(1_999):
        pace.connection_closed()
    assert not pace.reclaim_due()
    pace.connection_closed()
    assert pace.reclaim_due()
    pace.step()
    assert pace.reclaims == 1
    assert pace.closed == 0
    assert not pace.reclaim_due()


def test_with_few_open_a_reclaim_waits_for_the_minimum_of_closes(unfrozen):
    pace = collector(open_connections=10)
    for _ in range(RECLAIM_MIN_CLOSED - 1):
        pace.connection_closed()
    assert not pace.reclaim_due()
    pace.connection_closed()
    assert pace.reclaim_due()


def test_a_reclaim_comes_at_the_latest_after_reclaim_s(unfrozen):
    clock = [100.0]
    pace = collector(open_connections=5_000, clock=clock)
    clock[0] += 599.0
    assert not pace.reclaim_due()
    pace.step()
    assert pace.reclaims == 0  # a pass
    clock[0] += 1.0
    pace.step()
    assert pace.reclaims == 1
    assert pace.last_reclaim is not None


def test_a_collection_that_holds_the_loop_long_is_a_warning(unfrozen, feed_log, monkeypatch):
    pace = collector(open_connections=3)
    monkeypatch.setattr(collector_module.logger, "level", logging.INFO)  # whatever LOG_LEVEL says
    pace.step()  # a short pass: nothing said
    assert feed_log.records == []
    monkeypatch.setattr(collector_module, "LONG_PAUSE_S", 0.0)  # every pause is long now
    pace.step()
    for _ in range(RECLAIM_MIN_CLOSED):
        pace.connection_closed()
    pace.step()
    warned = [r.getMessage() for r in feed_log.records if r.levelname == "WARNING"]
    assert len(warned) == 2, warned
    assert warned[0].startswith("gc: a pass held the loop")
    assert "3 connections open" in warned[0]
    assert warned[1].startswith(f"gc: reclaim after {RECLAIM_MIN_CLOSED} closed connections held")
