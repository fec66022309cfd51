"""feeds.publish.outage: one WARNING per outage, however many failures; one INFO when it is over."""

from __future__ import annotations

import logging

import pytest

from feeds.publish.outage import QUIET_GAP_S, RELAPSE_S, Outage


@pytest.fixture(autouse=True)
def _capture(caplog):
    """The feeds loggers do not propagate (settings.LOGGING): listen on ours directly."""
    logger = logging.getLogger("feeds.publish.outage")
    logger.addHandler(caplog.handler)
    yield
    logger.removeHandler(caplog.handler)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def records(caplog) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "feeds.publish.outage"]


def test_many_failures_are_one_warning_and_the_recovery_one_info(caplog):
    caplog.set_level(logging.DEBUG, logger="feeds.publish.outage")
    clock = Clock()
    redis = Outage("Redis", clock=clock)
    for _ in range(10):
        redis.failed("ticker", ConnectionError("refused"))
        clock.now += 1.0
    redis.recovered("ticker")
    redis.recovered("hub")  # a second loop noticing changes nothing
    levels = [level for level, _ in records(caplog)]
    assert levels.count(logging.WARNING) == 1
    assert levels.count(logging.INFO) == 1
    warning = next(m for level, m in records(caplog) if level == logging.WARNING)
    assert "Redis unreachable (ConnectionError: refused, seen by ticker)" in warning
    assert "after 10.0 s" in next(m for level, m in records(caplog) if level == logging.INFO)


def test_a_failure_right_after_a_recovery_is_the_same_outage(caplog):
    caplog.set_level(logging.INFO, logger="feeds.publish.outage")
    clock = Clock()
    redis = Outage("Redis", clock=clock)
    redis.failed("lease", "down")
    clock.now += 10
    redis.recovered("lease")
    clock.now += RELAPSE_S / 2
    redis.failed("layer", "a dead pooled connection")
    clock.now += 1
    redis.recovered("layer")
    warnings = [m for level, m in records(caplog) if level == logging.WARNING]
    assert len(warnings) == 1


def test_a_new_outage_is_announced_again(caplog):
    caplog.set_level(logging.INFO, logger="feeds.publish.outage")
    clock = Clock()
    redis = Outage("Redis", clock=clock)
    redis.failed("ticker", "down")
    redis.recovered("ticker")
    clock.now += RELAPSE_S + 1
    redis.failed("ticker", "down again")
    # And a failure long after the last one, with no success seen in between, too.
    clock.now += QUIET_GAP_S + 1
    redis.failed("hub", "down once more")
    assert [level for level, _ in records(caplog)].count(logging.WARNING) == 3
