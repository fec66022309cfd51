"""What a test starts is in its markers, and checked: ``-m "not live"`` starts no server,
``-m "not browser"`` never starts Chromium.

Two checks, both failing the offending test with a message that names the
marker to add (before anything is started):

- at set-up, against the fixtures the test uses, directly or through other
  fixtures (``NEEDS``): a session fixture that starts a server is set up by
  the first test that asks for it, so an unmarked test would start it even
  under ``-m "not live"``;
- when a process is started from a test's own body (``STARTERS``: the
  helpers every test uses to start daphne, a cluster or a private Redis).

tests/conftest.py imports the hooks below.
"""

from __future__ import annotations

import functools
import importlib
import sys
from typing import Any

import pytest

# fixture -> the markers every test using it must carry
NEEDS: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        ("server", "own_server", "feed_server", "sse_feed"), frozenset({"live"})
    ),
    # A private redis-server unless REDIS_URL names one: a server all the same.
    **dict.fromkeys(("redis_url", "private_redis"), frozenset({"redis", "live"})),
    "postgres_url": frozenset({"postgres"}),
    "chromium": frozenset({"browser"}),
}

# (module, class, method) -> what it starts; patched once collection has imported them
STARTERS = {
    ("tests.servers", "Server", "start"): "a server process",
    ("tests.deploy.conftest", "ClusterProcess", "start"): "a local cluster",
    ("marketfeed.localredis", "LocalRedis", "start"): "a private redis-server",
}

_running: pytest.Item | None = None


def missing_markers(item: pytest.Item) -> dict[str, set[str]]:
    """``{fixture: markers it needs that item lacks}`` for the fixtures ``item`` uses."""
    names = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    if callspec is not None:  # a parametrize argument of the same name is not the fixture
        names -= set(callspec.params)
    marks = {mark.name for mark in item.iter_markers()}
    return {
        fixture: set(needed - marks)
        for fixture, needed in NEEDS.items()
        if fixture in names and not needed <= marks
    }


def _complaint(item: pytest.Item, what: str, markers: set[str]) -> str:
    marks = ", ".join(f"pytest.mark.{m}" for m in sorted(markers))
    return (
        f"{item.nodeid} uses {what} but is not marked {marks}: add it (pytestmark = ... in the "
        f"module), so that -m 'not {sorted(markers)[0]}' leaves it out instead of starting it"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    global _running
    _running = item
    for fixture, markers in missing_markers(item).items():
        pytest.fail(_complaint(item, f"the fixture {fixture!r}", markers), pytrace=False)


def pytest_runtest_teardown(item: pytest.Item) -> None:
    global _running
    _running = None


def _guarded(start: Any, what: str) -> Any:
    @functools.wraps(start)
    def guarded_start(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = _running
        if item is not None and item.get_closest_marker("live") is None:
            pytest.fail(_complaint(item, what, {"live"}), pytrace=False)
        return start(self, *args, **kwargs)

    guarded_start.__marker_guard__ = True  # type: ignore[attr-defined]
    return guarded_start


def pytest_collection_finish(session: pytest.Session) -> None:
    for (module_name, class_name, method), what in STARTERS.items():
        module = sys.modules.get(module_name)
        if module is None and not module_name.startswith("tests."):
            module = importlib.import_module(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        start = getattr(cls, method, None)
        if start is not None and not getattr(start, "__marker_guard__", False):
            setattr(cls, method, _guarded(start, what))
