"""feeds.deliver.server_check: every piece taken from under daphne is checked; a gap is named once.

The classes to check are passed in (``Libraries``), never patched: a fake
class lacking one attribute stands for a dependency upgrade that dropped it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging

import pytest

from feeds.deliver.server import attach
from feeds.deliver.server_check import (
    DAPHNE_SEND,
    FEATURES,
    NEEDS,
    OWNERS,
    Adapter,
    Libraries,
    Need,
    Unavailable,
    class_has,
)
from tests.unit.daphne_parts import (
    Protocol,
    Server,
    adapter,
    received,
    tcp_pair_fixture,  # noqa: F401 (the tcp_pair fixture)
)

LOGGER = "feeds.deliver.server_check"
QUOTE = '{"type":"quote","symbol":"AAPL","seq":7,"bid":189.23,"ask":189.25,"ts":1764000000123456}'


@pytest.fixture(autouse=True)
def _capture(caplog):
    """The feeds loggers do not propagate (settings.LOGGING): listen on ours directly."""
    logger = logging.getLogger(LOGGER)
    logger.addHandler(caplog.handler)
    yield
    logger.removeHandler(caplog.handler)


def warnings(caplog) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]


def fakes(without: Need | None = None) -> Libraries:
    """One class per library with every attribute the adapter needs, less ``without``."""
    classes = {}
    for owner in OWNERS:
        names = {n.attribute: None for n in NEEDS if n.owner == owner and n != without}
        classes[owner] = type(f"Fake_{owner}", (), names)
    return Libraries(**classes)


def test_the_installed_libraries_have_every_piece(caplog):
    installed = dataclasses.replace(Libraries.installed(), daphne_server=Server)
    own = Adapter(installed, daphne_running=lambda: True)
    assert own.check() == []
    assert own.mode() == {
        "server": "daphne", **dict.fromkeys(FEATURES, True), "degraded": False, "missing": [],
    }
    assert warnings(caplog) == []


@pytest.mark.parametrize("need", NEEDS, ids=lambda n: n.name)
def test_a_missing_piece_is_named_once_and_switches_off_what_needs_it(caplog, need):
    own = Adapter(fakes(without=need), daphne_running=lambda: True)
    assert own.check() == [need.name]
    assert own.check() == [need.name]  # idempotent
    own.lose(need.name, need.features)  # found again on a connection: still one line
    (line,) = warnings(caplog)
    assert line.startswith(f"server adapter: {need.name} is missing; ")
    state = own.mode()
    assert state["degraded"] is True
    assert state["missing"] == [need.name]
    assert {f for f in FEATURES if not state[f]} == need.features


def test_a_library_class_that_cannot_be_imported_is_one_line(caplog):
    libraries = dataclasses.replace(
        fakes(), websocket_protocol=Unavailable("daphne.ws_protocol.WebSocketProtocol")
    )
    own = Adapter(libraries, daphne_running=lambda: True)
    assert own.check() == ["daphne.ws_protocol.WebSocketProtocol (cannot be imported)"]
    (line,) = warnings(caplog)
    assert "no fast write path" in line
    assert "1001 closes refused" in line
    state = own.mode()
    assert not state["fast_write"]
    assert not state["close_codes"]
    assert state["stream_write"]  # SSE needs nothing of the WebSocket protocol


def test_an_instance_attribute_counts_only_if_the_class_sets_or_reads_it():
    socket = None  # a global of the same name must not count

    class Sets:
        def __init__(self) -> None:
            self.send_queue: list[bytes] = []

    class MentionsAGlobal:
        def send(self) -> object:
            return socket

    assert class_has(Sets, "send_queue")
    assert not class_has(MentionsAGlobal, "socket")
    assert not class_has(Sets, "sendCloseFrame")


def test_plain_asgi_reports_asgi_and_is_not_degraded(caplog):
    async def send(message):  # type: ignore[no-untyped-def]
        pass

    own = Adapter(fakes(), daphne_running=lambda: False)
    assert type(attach(send, buffer_bytes=4096, adapter=own)).__name__ == "Transport"
    state = own.mode()
    assert state["server"] == "asgi"
    assert state["degraded"] is False
    assert not any(state[f] for f in FEATURES)
    assert warnings(caplog) == []


def test_under_daphne_a_send_of_another_shape_is_named_once_and_nothing_is_taken(caplog):
    async def send(message):  # type: ignore[no-untyped-def]
        pass

    own = Adapter(fakes(), daphne_running=lambda: True)
    for _ in range(3):
        assert type(attach(send, buffer_bytes=4096, adapter=own)).__name__ == "Transport"
    assert warnings(caplog) == [f"server adapter: {DAPHNE_SEND} is missing; " + ", ".join(
        [
            "no fast write path",
            "no back-pressure (a slow WebSocket client is buffered, not conflated)",
            "1001 closes refused (the connection is dropped instead)",
            "no permessage-deflate",
            "SSE events go through plain ASGI",
            "no back-pressure for SSE (a slow reader is buffered)",
        ]
    )]
    assert own.mode()["degraded"] is True


# --- per connection, on the installed Twisted ------------------------------------------------


def attach_to(own: Adapter, protocol: Protocol):  # type: ignore[no-untyped-def]
    return attach(
        functools.partial(Server().handle_reply, protocol), buffer_bytes=4096, adapter=own
    )


def test_a_connection_without_send_queue_is_served_without_the_fast_path(caplog, tcp_pair):
    connection, peer = tcp_pair
    own = adapter()
    for _ in range(2):
        protocol = Protocol(connection)
        del protocol.send_queue
        transport = attach_to(own, protocol)
        assert not transport.write_frames([QUOTE], shared=True)  # the caller uses ASGI
        connection.unregisterProducer()
        transport.watch(pause=lambda: None, resume=lambda: None)
        assert connection.producer is not None  # back-pressure stays
    assert received(peer) == b""
    assert warnings(caplog) == [
        "server adapter: autobahn WebSocketServerProtocol.send_queue is missing; "
        "no fast write path"
    ]
    state = own.mode()
    assert state["degraded"] is True
    assert not state["fast_write"]
    assert state["back_pressure"]


def test_a_connection_lost_before_its_consumer_started_costs_the_process_nothing(
    caplog, tcp_pair
):
    """A client reset during a connect storm: Twisted deleted the socket before we attach."""
    connection, _ = tcp_pair
    own = adapter()
    gone = Protocol(connection)
    connection.disconnected = 1  # as abstract.FileDescriptor.connectionLost leaves it
    sock = connection.socket
    del connection.socket
    assert not attach_to(own, gone).write_frames([QUOTE], shared=True)  # nothing to write to
    assert warnings(caplog) == []
    assert own.mode()["fast_write"]
    assert not own.mode()["degraded"]
    connection.socket, connection.disconnected = sock, 0
    assert attach_to(own, Protocol(connection)).write_frames([QUOTE], shared=True)


async def test_without_send_close_frame_a_1001_drops_the_connection(caplog, tcp_pair):
    connection, _ = tcp_pair
    own = adapter()
    protocol = Protocol(connection)
    del protocol.sendCloseFrame
    await attach_to(own, protocol).close(1001)
    assert connection.disconnecting  # the client sees the connection go, and reconnects
    assert "autobahn WebSocketServerProtocol.sendCloseFrame is missing" in warnings(caplog)[0]
    assert not own.mode()["close_codes"]


def test_a_producer_other_than_daphnes_http_channel_is_named(caplog, tcp_pair):
    connection, _ = tcp_pair
    own = adapter()
    connection.registerProducer(Server(), True)  # not what daphne leaves after the upgrade
    attach_to(own, Protocol(connection)).watch(pause=lambda: None, resume=lambda: None)
    (line,) = warnings(caplog)
    assert "twisted.web HTTPChannel as the upgraded connection's producer" in line
    assert not own.mode()["back_pressure"]


# --- what staff and a scraper see ----------------------------------------------------------


def test_healthz_shows_the_server_mode_to_staff_only(client, db):
    from feeds.deliver.server import mode
    from tests.consumer.conftest import make_user

    staff, plain = make_user("checkstaff"), make_user("checkplain")
    staff.is_staff = True
    staff.save()
    shown = client.get("/healthz", HTTP_AUTHORIZATION=f"Token {staff.token}").json()
    assert shown["server"] == mode()
    assert shown["server"]["server"] == "asgi"  # the test client is no daphne
    assert "server" not in client.get("/healthz", HTTP_AUTHORIZATION=f"Token {plain.token}").json()
    assert "server" not in client.get("/healthz").json()


def test_metrics_carry_each_feature_and_the_degraded_flag():
    from feeds.edges import metrics

    text = metrics.exposition().decode()
    for feature in FEATURES:
        assert f'marketfeed_server_feature{{feature="{feature}"}} 0.0' in text  # plain ASGI here
    assert "marketfeed_server_degraded 0.0" in text
    assert "marketfeed_server_direct_writes_total" in text
