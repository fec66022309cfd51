"""The marker checks of tests/markers.py, in a pytest run of their own.

A test that starts a server or Chromium (through a fixture, or a helper in
its body) without the marker that says so fails, before anything starts;
with the marker it is left out by ``-m "not live"`` / ``-m "not browser"``.
"""

from __future__ import annotations

import pytest

from tests.servers import ROOT

pytest_plugins = ("pytester",)

CONFTEST = """
import pytest
from tests.markers import pytest_collection_finish, pytest_runtest_setup, pytest_runtest_teardown

@pytest.fixture(scope="session")
def server(tmp_path_factory):
    (tmp_path_factory.getbasetemp().parent / "server-started").touch()
    yield

@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    (tmp_path_factory.getbasetemp().parent / "chromium-started").touch()
    yield

@pytest.fixture
def page(chromium, server):  # the browser tests' shape: through another fixture
    yield
"""

TESTS = """
import pytest
from tests.servers import Server

def test_unmarked_with_a_server(server):
    pass

@pytest.mark.browser
def test_a_page_without_live(page):
    pass

def test_unmarked_starting_daphne_itself():
    Server({}, 1, command=["false"]).start()

@pytest.mark.parametrize("server", ["not the fixture"])
def test_a_parameter_named_like_a_fixture(server):
    pass

@pytest.mark.live
def test_marked(server):
    pass
"""


@pytest.fixture
def inner(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeini("[pytest]\nmarkers =\n    live: x\n    browser: x\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=TESTS)
    return pytester


def started(pytester) -> set[str]:
    return {p.name for p in pytester.path.parent.rglob("*-started")}


def test_unmarked_users_of_a_server_or_browser_fail_before_it_starts(inner):
    result = inner.runpytest_subprocess("-p", "no:django", "-p", "no:cacheprovider",
                                        "-m", "not live")
    result.assert_outcomes(passed=1, errors=2, failed=1, deselected=1)
    for line in (
        "*test_unmarked_with_a_server uses the fixture 'server' but is not marked "
        "pytest.mark.live: add it*",
        "*test_a_page_without_live uses the fixture 'server' but is not marked pytest.mark.live*",
        "*test_unmarked_starting_daphne_itself uses a server process but is not marked "
        "pytest.mark.live*",
    ):
        result.stdout.fnmatch_lines([line])
    assert started(inner) == set()


def test_not_browser_never_starts_chromium(inner):
    result = inner.runpytest_subprocess("-p", "no:django", "-p", "no:cacheprovider",
                                        "-m", "not browser and not live", "-k", "not unmarked")
    result.assert_outcomes(passed=1, deselected=4)
    assert started(inner) == set()
