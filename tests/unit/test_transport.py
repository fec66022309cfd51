"""feeds.deliver.server's frames in every format and compression, read back by websockets' parser.

The negotiation runs through autobahn's own offer and extension classes, the
decompression through websockets' client-side permessage-deflate: the two
libraries a server and a client of this feed really use.
"""

from __future__ import annotations

import json

import msgpack
import pytest
from autobahn.websocket.compress import PerMessageDeflate as AutobahnDeflate
from autobahn.websocket.compress import PerMessageDeflateOffer
from websockets.extensions.permessage_deflate import PerMessageDeflate as ClientDeflate
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from feeds.core.wire_formats import JSON, MSGPACK, OPCODE_BINARY
from feeds.deliver.server import _deflate_in_context, _DeflateAccept, forget_frames, frame, framer
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
    assert parsed.opcode is Opcode.BINARY and parsed.fin and parsed.data == payload


def test_a_compressed_frame_has_rsv1_and_only_that_bit_more():
    assert frame(OPCODE_BINARY, b"x", compressed=True)[0] == frame(OPCODE_BINARY, b"x")[0] | 0x40


def test_a_shared_text_is_converted_to_msgpack_once_per_flush_pass():
    first = framer(MSGPACK).shared(QUOTE)
    assert framer(MSGPACK).shared(QUOTE) is first
    assert framer(MSGPACK, 15).shared(QUOTE) is framer(MSGPACK, 15).shared(QUOTE)
    forget_frames()
    again = framer(MSGPACK).shared(QUOTE)
    assert again == first and again is not first
    parsed = parse(first)
    assert parsed.opcode is Opcode.BINARY and msgpack.unpackb(parsed.data) == json.loads(QUOTE)


def test_own_texts_are_framed_each_time_and_never_cached():
    batch = "[" + QUOTE + "," + QUOTE + "]"
    assert framer(MSGPACK).own(batch) is not framer(MSGPACK).own(batch)
    assert msgpack.unpackb(parse(framer(MSGPACK).own(batch)).data) == json.loads(batch)


@pytest.mark.parametrize("wire", [JSON, MSGPACK])
def test_shared_deflate_frames_decode_with_a_fresh_window_each(wire):
    header, ext = negotiate({"client_max_window_bits": [True]}, shared=True)
    assert "server_no_context_takeover" in header  # said, so the client may drop its window
    assert ext.server_no_context_takeover and ext.server_max_window_bits == 15
    texts = [QUOTE, QUOTE.replace("7", "8"), "[" + QUOTE + "]"]
    data = framer(wire, ext.server_max_window_bits).frames(texts, shared=True)
    frames = parse_all(data, client_inflater(context=False))
    assert [f.data for f in frames] == [wire.payload(t) for t in texts]


def test_a_client_asking_for_a_small_window_gets_frames_made_for_it():
    header, ext = negotiate({"server_max_window_bits": ["10"]}, shared=True)
    assert "server_max_window_bits=10" in header and ext.server_max_window_bits == 10
    payload = (QUOTE * 40).encode()
    data = framer(JSON, 10).frames([QUOTE * 40], shared=False)
    inflate = client_inflater(context=False, window_bits=10)
    assert [f.data for f in parse_all(data, inflate)] == [payload]


def test_context_takeover_frames_decode_in_order_on_one_stream():
    header, ext = negotiate({"client_max_window_bits": [True]}, shared=False)
    assert header == "permessage-deflate" and not ext.server_no_context_takeover
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
