"""WebSocket text frames built by feeds.deliver.server, read back by a real WebSocket parser."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from feeds.deliver.server import forget_frames, frame_of, text_frame


def parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
        while True:
            next(parser)
    except StopIteration as done:
        return done.value


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_every_length_encoding_parses_back_to_the_same_text(size):
    text = ("é" + "x" * size)[:size] if size else ""
    frame = parse(text_frame(text.encode()))
    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    assert frame.data.decode() == text


def test_a_shared_text_is_framed_once_per_pass():
    text = '{"type":"quote","symbol":"AAPL","seq":1}'
    first = frame_of(text)
    assert frame_of(text) is first
    forget_frames()
    again = frame_of(text)
    assert again == first
    assert again is not first
