"""The load generator's frame cutter (bench/wire.py) reads what the server writes.

The benchmark's figures are only as good as its client: every frame must be
seen once, whole, in order, however the bytes are split by the network.
"""

from __future__ import annotations

import asyncio

import pytest
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from bench.wire import LeanConnection
from feeds.deliver.server import text_frame


class Socket:
    """What the connection writes back (its pongs), as an asyncio transport would take it."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        pass


def parse_request(data: bytes) -> Request:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Request.parse(reader.read_line)
    try:
        while True:
            next(parser)
    except StopIteration as done:
        return done.value


def opening() -> tuple[LeanConnection, Socket, bytes]:
    """A connection that sent its handshake, and the bytes of a real server's answer."""
    sock = Socket()
    conn = LeanConnection("ws://127.0.0.1:1/", max_size=2**24)
    conn.connection_made(sock)  # type: ignore[arg-type]
    server = ServerProtocol()
    server.send_response(server.accept(parse_request(b"".join(sock.sent))))
    sock.sent.clear()
    return conn, sock, b"".join(server.data_to_send())


async def streaming() -> tuple[LeanConnection, list[str], Socket]:
    """A connection past a real handshake (answered by websockets' server side), streaming."""
    conn, sock, response = opening()
    conn.data_received(response)
    await asyncio.wait_for(conn.opened, 1)
    got: list[str] = []
    conn.stream(got.append)
    return conn, got, sock


TEXTS = ["", "a", "é" * 63, "x" * 125, "y" * 126, "z" * 65_535, "w" * 65_536, '{"type":"quote"}']


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000, 10**7])
async def test_every_frame_arrives_once_whole_and_in_order_however_the_bytes_are_split(chunk):
    conn, got, _ = await streaming()
    wire = b"".join(text_frame(t.encode()) for t in TEXTS)
    for i in range(0, len(wire), chunk):
        conn.data_received(wire[i : i + chunk])
    assert got == TEXTS


async def test_a_ping_between_text_frames_is_answered_and_the_stream_goes_on():
    conn, got, sock = await streaming()
    ping = Frame(Opcode.PING, b"hi").serialize(mask=False, extensions=[])
    conn.data_received(text_frame(b"one") + ping + text_frame(b"two"))
    assert got == ["one", "two"]
    pongs = [data for data in sock.sent if data]
    assert len(pongs) == 1
    assert pongs[0][0] == 0x8A  # FIN + pong, masked by the client


async def test_frames_in_the_same_reads_as_the_handshake_answer_are_all_read():
    """Wherever the reads split (after a frame header too), recv then stream see every frame."""
    frames = b"".join(text_frame(t.encode()) for t in ("welcome", "subscribed", "q1", "q2"))
    for cut in range(1, 300):
        conn, _, response = opening()
        wire = response + frames
        conn.data_received(wire[:cut])
        conn.data_received(wire[cut:])
        await asyncio.wait_for(conn.opened, 1)
        assert [await conn.recv(), await conn.recv()] == ["welcome", "subscribed"]
        got: list[str] = []
        conn.stream(got.append)
        assert got == ["q1", "q2"], cut


async def test_a_connection_says_whether_the_server_closed_it_or_it_was_dropped():
    closed, _, _ = await streaming()
    close = Frame(Opcode.CLOSE, (1001).to_bytes(2, "big") + b"shutdown")
    closed.data_received(close.serialize(mask=False, extensions=[]))
    closed.connection_lost(None)
    assert closed.ended_by() == "closed: 1001"
    dropped, _, _ = await streaming()
    dropped.connection_lost(ConnectionResetError())
    assert dropped.ended_by() == "dropped"
