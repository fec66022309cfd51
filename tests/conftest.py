"""Shared test fixtures: a fresh channel layer, store and hub for every test."""

from __future__ import annotations

import logging
import os

import pytest

from tests.markers import pytest_collection_finish, pytest_runtest_setup, pytest_runtest_teardown
from tests.schema import server_messages_checked
from tests.servers import NO_HISTORY, Server, free_port, manage
from tests.timeouts import timeout

# The marker checks (tests/markers.py): a test that starts a server or Chromium
# without saying so in its markers fails before it starts anything.
__all__ = [
    "pytest_collection_finish", "pytest_runtest_setup", "pytest_runtest_teardown", "timeout",
]


def _readers_take_no_table_locks(sender, connection, **kwargs) -> None:  # type: ignore[no-untyped-def]
    """In-process tests run on SQLite's in-memory database in shared-cache mode, where a
    read in one thread holds a table lock that fails another thread's write at once
    ("database table is locked"; no busy timeout applies). The product's WAL file
    database has no such lock: there a reader never blocks a writer. read_uncommitted
    lifts the readers' table locks of shared-cache mode (tests/faults/test_sqlite_shared_cache.py).
    """
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA read_uncommitted = 1")


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    from django.db.backends.signals import connection_created

    connection_created.connect(_readers_take_no_table_locks, dispatch_uid="tests-read-uncommitted")


@pytest.fixture
def feed_log(caplog):
    """``caplog`` for the ``feeds`` loggers, from INFO up (settings.LOGGING stops them
    propagating to the root logger, where ``caplog`` listens)."""
    logger = logging.getLogger("feeds")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.INFO)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


@pytest.fixture(autouse=True)
def _fresh_feed_state(settings):
    """No embedded ticker in-process, nor the server's garbage-collector pace (it would
    freeze the test process's objects); a new layer and store per test, and no outage
    remembered from another test (one ended within seconds would swallow the warning)."""
    from channels.layers import channel_layers

    from feeds.publish import outage
    from feeds.publish.build import reset_store

    settings.FEED_TICKER = "off"
    settings.FEED_GC_PASS_S = 0
    channel_layers.backends.clear()
    reset_store()
    outage._outages.clear()
    yield
    channel_layers.backends.clear()
    reset_store()


@pytest.fixture(autouse=True)
def contract_violations():
    """Every frame a live server sends a websockets client is checked against docs/asyncapi.json.

    Whatever the test does with the frame, and whoever reads it (the test, the
    Python client under test), the test fails if the server sent a message
    the document does not describe. (A test of the check itself takes the list
    this yields and empties it.)
    """
    with server_messages_checked() as violations:
        yield violations
    shown = "\n".join(violations[:10])
    assert not violations, f"server messages outside docs/asyncapi.json:\n{shown}"


# --- a live server shared by the live and browser tests ------------------------


@pytest.fixture(scope="session")
def live_env(tmp_path_factory) -> dict[str, str]:
    var = tmp_path_factory.mktemp("live-var")
    unset = ("REDIS_URL", "DATABASE_URL", "FEED_TICKER")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(MARKETFEED_VAR_DIR=str(var), PYTHONUNBUFFERED="1", FEED_SEED="7")
    env.update(NO_HISTORY)
    manage(env, "migrate", "--noinput")
    return env


@pytest.fixture(scope="session")
def token(live_env) -> str:
    printed = manage(
        live_env, "feeduser", "livetester", "--password", "live-pass-123", "--superuser"
    )
    return printed.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def server(live_env, token):
    srv = Server(live_env, free_port())
    srv.start()
    yield srv
    srv.stop()
