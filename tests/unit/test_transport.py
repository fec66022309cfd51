"""feeds.deliver.server: frames in every format and compression; the transport on real Twisted.

The negotiation runs through autobahn's own offer and extension classes, the
decompression through websockets' client-side permessage-deflate: the two
libraries a server and a client of this feed really use. The transport and
the SSE stream write to Twisted's own TCP connection and twisted.web's own
request on a loopback socket (tests/unit/daphne_parts.py), so a change of
Twisted's buffering or producer calls fails here.
"""

from __future__ import annotations

import functools
import json

import msgpack
import pytest
from autobahn.websocket.compress import PerMessageDeflate as AutobahnDeflate
from autobahn.websocket.compress import PerMessageDeflateOffer
from twisted.internet.protocol import Factory
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.http import HTTPChannel
from websockets.extensions.permessage_deflate import PerMessageDeflate as ClientDeflate
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from feeds.core.wire_formats import JSON, MSGPACK, OPCODE_BINARY
from feeds.deliver.server import (
    _deflate_in_context,
    _DeflateAccept,
    attach,
    attach_stream,
    forget_frames,
    frame,
    framer,
)
from tests.unit.daphne_parts import (
    Protocol,
    Server,
    adapter,
    received,
    tcp_pair_fixture,  # noqa: F401 (the tcp_pair fixture)
)
from tests.unit.test_frames import parse

QUOTE = '{"type":"quote","symbol":"AAPL","seq":7,"bid":189.23,"ask":189.25,"ts":1764000000123456}'


def client_inflater(*, context: bool, window_bits: int = 15) -> ClientDeflate:
    """What a websockets client decodes server frames with (remote = the server)."""
    return ClientDeflate(
        remote_no_context_takeover=not context, local_no_context_takeover=False,
        remote_max_window_bits=window_bits, local_max_window_bits=15,
    )


def parse_all(data: bytes, inflate: ClientDeflate) -> list[Frame]:
    """Every frame in ``data``, decompressed by the client's extension."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=False, extensions=[inflate])
        try:
            while True:
                next(parser)
        except StopIteration as done:
            frames.append(done.value)
    return frames


def negotiate(params: dict[str, list[str | bool]], *, shared: bool) -> tuple[str, AutobahnDeflate]:
    """Our accept of a client offer: the response's header value, and autobahn's extension."""
    accept = _DeflateAccept(
        PerMessageDeflateOffer.parse(params), no_context_takeover=True if shared else None
    )
    return accept.get_extension_string(), AutobahnDeflate.create_from_offer_accept(True, accept)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_binary_frames_of_every_length_parse_back(size):
    payload = (bytes(range(256)) * (size // 256 + 1))[:size]
    parsed = parse(frame(OPCODE_BINARY, payload))
    assert parsed.opcode is Opcode.BINARY
    assert parsed.fin
    assert parsed.data == payload


def test_a_compressed_frame_has_rsv1_and_only_that_bit_more():
    assert frame(OPCODE_BINARY, b"x", compressed=True)[0] == frame(OPCODE_BINARY, b"x")[0] | 0x40


def test_a_shared_text_is_converted_to_msgpack_once_per_flush_pass():
    first = framer(MSGPACK).shared(QUOTE)
    assert framer(MSGPACK).shared(QUOTE) is first
    assert framer(MSGPACK, 15).shared(QUOTE) is framer(MSGPACK, 15).shared(QUOTE)
    forget_frames()
    again = framer(MSGPACK).shared(QUOTE)
    assert again == first
    assert again is not first
    parsed = parse(first)
    assert parsed.opcode is Opcode.BINARY
    assert msgpack.unpackb(parsed.data) == json.loads(QUOTE)


def test_own_texts_are_framed_each_time_and_never_cached():
    batch = "[" + QUOTE + "," + QUOTE + "]"
    assert framer(MSGPACK).own(batch) is not framer(MSGPACK).own(batch)
    assert msgpack.unpackb(parse(framer(MSGPACK).own(batch)).data) == json.loads(batch)


@pytest.mark.parametrize("wire", [JSON, MSGPACK])
def test_shared_deflate_frames_decode_with_a_fresh_window_each(wire):
    header, ext = negotiate({"client_max_window_bits": [True]}, shared=True)
    assert "server_no_context_takeover" in header  # said, so the client may drop its window
    assert ext.server_no_context_takeover
    assert ext.server_max_window_bits == 15
    texts = [QUOTE, QUOTE.replace("7", "8"), "[" + QUOTE + "]"]
    data = framer(wire, ext.server_max_window_bits).frames(texts, shared=True)
    frames = parse_all(data, client_inflater(context=False))
    assert [f.data for f in frames] == [wire.payload(t) for t in texts]


def test_a_client_asking_for_a_small_window_gets_frames_made_for_it():
    header, ext = negotiate({"server_max_window_bits": ["10"]}, shared=True)
    assert "server_max_window_bits=10" in header
    assert ext.server_max_window_bits == 10
    payload = (QUOTE * 40).encode()
    data = framer(JSON, 10).frames([QUOTE * 40], shared=False)
    inflate = client_inflater(context=False, window_bits=10)
    assert [f.data for f in parse_all(data, inflate)] == [payload]


def test_context_takeover_frames_decode_in_order_on_one_stream():
    header, ext = negotiate({"client_max_window_bits": [True]}, shared=False)
    assert header == "permessage-deflate"
    assert not ext.server_no_context_takeover
    inflate = client_inflater(context=True)
    sizes = []
    for seq in range(5):
        text = QUOTE.replace('"seq":7', f'"seq":{seq}')
        data = _deflate_in_context(ext, text.encode())
        sizes.append(len(data))
        frames = parse_all(frame(1, data, compressed=True), inflate)
        assert [f.data for f in frames] == [text.encode()]
    assert sizes[-1] < sizes[0] / 2  # the stream remembers the previous quotes


def test_a_client_that_forbids_context_takeover_gets_it_even_in_context_mode():
    _, ext = negotiate({"server_no_context_takeover": [True]}, shared=False)
    assert ext.server_no_context_takeover  # the transport then uses the shared framer


# --- the transport on the installed Twisted ---------------------------------------------------


def websocket(connection, **options):  # type: ignore[no-untyped-def]
    """attach() over daphne's send of a fresh open protocol on ``connection``."""
    protocol, server, own = Protocol(connection), Server(), adapter()
    transport = attach(
        functools.partial(server.handle_reply, protocol), buffer_bytes=4096, adapter=own,
        **options,
    )
    return transport, protocol, server, own


def fill(write, events: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Write until the producer is paused (failing after 32 MiB: back-pressure never came)."""
    written = 0
    while "pause" not in events:
        assert written < 32 * 2**20, "Twisted never paused the producer"
        write()
        written += len(QUOTE)


def drain(connection, peer) -> None:  # type: ignore[no-untyped-def]
    """Read at the client and let Twisted write, until Twisted holds nothing more."""
    for _ in range(100_000):
        if not connection.reactor.writers:
            return
        received(peer)
        connection.doWrite()
    raise AssertionError("Twisted's buffer never drained")


def test_frames_go_straight_to_the_socket_not_through_daphne(tcp_pair):
    connection, peer = tcp_pair
    transport, _, server, own = websocket(connection)
    assert transport.write_frames([QUOTE, QUOTE], shared=True)
    data = received(peer)
    assert data == frame(1, QUOTE.encode()) * 2
    assert parse(data[: len(data) // 2]).data == QUOTE.encode()
    assert not connection.reactor.writers  # the kernel took it all: nothing waits in Twisted
    assert server.replies == []
    assert own.direct_writes == 1


def test_autobahns_own_frames_go_straight_to_the_socket_too(tcp_pair):
    """A ping, a pong, the handshake's answer: written now, not on the reactor's next turn."""
    connection, peer = tcp_pair
    websocket(connection)
    ping = frame(9, b"are you there")
    connection.write(ping)  # as autobahn's sendData does
    assert not connection.reactor.writers  # no writability registration, no wake-up
    assert received(peer) == ping


def test_a_frame_behind_buffered_bytes_waits_its_turn(tcp_pair):
    connection, peer = tcp_pair
    transport, *_ = websocket(connection, socket_buffer_bytes=4096)
    events: list[str] = []
    transport.watch(pause=lambda: events.append("pause"), resume=lambda: events.append("resume"))
    fill(lambda: transport.write_frames([QUOTE], shared=False), events)
    ping = frame(9, b"last")
    connection.write(ping)  # Twisted holds bytes: this one goes after them, through Twisted
    data = b""
    for _ in range(100_000):
        data += received(peer)
        if not connection.reactor.writers:
            break
        connection.doWrite()
    data += received(peer)
    assert data.endswith(ping)
    assert data.count(frame(1, QUOTE.encode())) == (len(data) - len(ping)) // len(
        frame(1, QUOTE.encode())
    )


def test_a_stalled_reader_pauses_the_producer_and_a_drained_one_resumes_it(tcp_pair):
    connection, peer = tcp_pair
    channel = HTTPChannel()
    connection.registerProducer(channel, True)  # as daphne leaves it after the upgrade
    transport, *_ = websocket(connection, socket_buffer_bytes=4096)
    events: list[str] = []
    transport.watch(pause=lambda: events.append("pause"), resume=lambda: events.append("resume"))
    assert connection.producer is not channel  # released: it would stop reading the socket
    assert connection.bufferSize == 4096
    fill(lambda: transport.write_frames([QUOTE], shared=False), events)
    assert events == ["pause"]
    drain(connection, peer)
    assert events == ["pause", "resume"]


async def test_1001_goes_out_as_a_close_frame_and_1000_through_asgi(tcp_pair):
    transport, protocol, server, _ = websocket(tcp_pair[0])
    await transport.close(1001)
    assert protocol.close_frames == [1001]
    assert server.replies == []
    await transport.close(1000)
    assert server.replies == [{"type": "websocket.close", "code": 1000}]


def test_nothing_is_written_after_the_close_frame(tcp_pair):
    connection, peer = tcp_pair
    transport, protocol, *_ = websocket(connection)
    protocol.sendCloseFrame(code=1001)
    assert transport.write_frames([QUOTE], shared=True)  # dropped, as a reader would
    assert received(peer) == b""


def test_a_tls_transport_is_left_to_twisted_which_must_encrypt(tcp_pair):
    connection, peer = tcp_pair
    wrapper = ProtocolWrapper(WrappingFactory(Factory()), TwistedProtocol())
    wrapper.makeConnection(connection)  # it answers for the socket's attributes, as TLS's does
    transport, *_ = websocket(wrapper)
    assert not transport.write_frames([QUOTE], shared=True)  # the caller goes through autobahn
    assert received(peer) == b""


def test_plain_asgi_has_no_transport_of_its_own():
    async def send(message):  # type: ignore[no-untyped-def]
        pass

    own = adapter(daphne=False)
    transport = attach(send, buffer_bytes=4096, adapter=own)
    assert not transport.write_frames([QUOTE], shared=True)
    stream = attach_stream(send, buffer_bytes=4096, socket_buffer_bytes=0, adapter=own)
    assert not stream.write(b"data: x\n\n")
    stream.watch(pause=pytest.fail, resume=pytest.fail)
    stream.release()
    assert own.mode()["server"] == "asgi"


# --- a streaming HTTP response (SSE) on the installed twisted.web -----------------------------


def http_stream(connection, **options):  # type: ignore[no-untyped-def]
    """attach_stream() over daphne's send of a twisted.web request on ``connection``."""
    channel = HTTPChannel()
    channel.timeOut = None  # no idle timer: there is no reactor to run it
    channel.makeConnection(connection)
    channel.dataReceived(b"GET /sse/quotes/?symbols=AAPL HTTP/1.1\r\nHost: feed\r\n\r\n")
    (request,) = channel.requests  # twisted.web's Request, left open as daphne leaves it
    stream = attach_stream(
        functools.partial(Server().handle_reply, request), adapter=adapter(), **options
    )
    return stream, request, channel


def test_a_stream_writes_to_the_request_at_once_and_drops_after_its_end(tcp_pair):
    connection, peer = tcp_pair
    stream, request, _ = http_stream(connection, buffer_bytes=4096, socket_buffer_bytes=0)
    assert stream.write(b"data: 1\n\n")
    connection.doWrite()
    head = received(peer)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\ndata: 1\n\n\r\n" in head  # one chunk, as written
    request.finish()
    connection.doWrite()
    received(peer)
    assert stream.write(b"data: 2\n\n")  # True: dropped, as a reader that left would
    connection.doWrite()
    assert received(peer) == b""


def test_a_stream_pauses_when_the_client_stalls_and_resumes_when_it_reads(tcp_pair):
    connection, peer = tcp_pair
    stream, request, _ = http_stream(connection, buffer_bytes=4096, socket_buffer_bytes=4096)
    events: list[str] = []
    stream.watch(pause=lambda: events.append("pause"), resume=lambda: events.append("resume"))
    assert connection.bufferSize == 4096
    fill(lambda: stream.write(QUOTE.encode()), events)
    assert events == ["pause"]
    drain(connection, peer)
    assert events == ["pause", "resume"]
    stream.release()
    stream.release()
    assert request.producer is None


def test_a_stream_watched_while_its_channel_waits_is_paused_at_once(tcp_pair):
    stream, _, channel = http_stream(tcp_pair[0], buffer_bytes=4096, socket_buffer_bytes=0)
    channel.pauseProducing()  # the transport was full before the stream watched it
    events: list[str] = []
    stream.watch(pause=lambda: events.append("pause"), resume=lambda: events.append("resume"))
    assert events == ["pause"]
