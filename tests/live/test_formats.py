"""MessagePack frames and permessage-deflate against a real daphne, with the websockets client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack
import pytest
import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import Frame

from tests.conftest import timeout
from tests.schema import check_message
from tests.servers import Server, free_port

pytestmark = pytest.mark.live


class RecordingDeflate(PerMessageDeflate):
    """The client's permessage-deflate, noting for each data frame whether it came compressed."""

    def __init__(self, *args: Any, seen: list[bool], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen = seen

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        if frame.opcode.value in (1, 2):
            self.seen.append(frame.rsv1)
        return super().decode(frame, max_size=max_size)


class RecordingFactory(ClientPerMessageDeflateFactory):
    """websockets' default offer (``compression="deflate"``), with a recording extension."""

    def __init__(self) -> None:
        super().__init__(client_max_window_bits=True)
        self.seen: list[bool] = []

    def process_response_params(self, params, accepted_extensions) -> PerMessageDeflate:
        ext = super().process_response_params(params, accepted_extensions)
        return RecordingDeflate(
            ext.remote_no_context_takeover, ext.local_no_context_takeover,
            ext.remote_max_window_bits, ext.local_max_window_bits, seen=self.seen,
        )


def decode(frame: str | bytes, *, binary: bool) -> list[dict[str, Any]]:
    assert isinstance(frame, bytes) is binary, f"wrong frame kind: {frame!r:.80}"
    data = msgpack.unpackb(frame) if binary else json.loads(frame)
    return [check_message(m) for m in (data if isinstance(data, list) else [data])]


async def quotes_after_subscribe(ws, *, binary: bool, count: int = 5) -> list[dict[str, Any]]:
    """Subscribe to two symbols and collect ``count`` quotes, checking each message on the way."""
    request = {"op": "subscribe", "symbols": ["AAPL", "EUR/USD"], "id": 1}
    await ws.send(msgpack.packb(request) if binary else json.dumps(request))
    got: list[dict[str, Any]] = []
    seen_welcome = seen_reply = False
    while len(got) < count:
        for msg in decode(await asyncio.wait_for(ws.recv(), timeout(10)), binary=binary):
            seen_welcome |= msg["type"] == "welcome"
            seen_reply |= msg.get("id") == 1 and msg["type"] == "subscribed"
            if msg["type"] == "quote":
                got.append(msg)
    assert seen_welcome
    assert seen_reply
    return got


async def no_error_until_closed(ws) -> None:
    """Read until the connection closes (ConnectionClosed), failing on an ``error`` message."""
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout(10)))
        assert msg["type"] != "error", msg


def extensions_header(ws) -> str:
    return ws.response.headers.get("Sec-WebSocket-Extensions", "")


@pytest.fixture(scope="module")
def context_server(live_env, token):
    """A second daphne on the same database, compressing with context takeover."""
    srv = Server({**live_env, "FEED_WS_COMPRESSION": "context"}, free_port())
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
async def test_an_offering_client_gets_shared_deflate_and_correct_quotes(server, token, fmt):
    factory = RecordingFactory()
    url = server.ws_url + f"?token={token}&format={fmt}"
    async with websockets.connect(url, extensions=[factory], compression=None) as ws:
        header = extensions_header(ws)
        assert header.startswith("permessage-deflate")
        assert "server_no_context_takeover" in header
        quotes = await quotes_after_subscribe(ws, binary=fmt == "msgpack")
    assert {q["symbol"] for q in quotes} <= {"AAPL", "EUR/USD"}
    assert factory.seen
    assert all(factory.seen)  # every data frame, welcome to quotes, compressed


async def test_a_client_that_offers_nothing_gets_plain_frames(server, token):
    async with websockets.connect(server.ws_url + f"?token={token}", compression=None) as ws:
        assert "permessage-deflate" not in extensions_header(ws)
        quotes = await quotes_after_subscribe(ws, binary=False)
    seqs: dict[str, int] = {}
    for q in quotes:
        assert q["seq"] > seqs.get(q["symbol"], 0)
        seqs[q["symbol"]] = q["seq"]


async def test_msgpack_without_compression_is_plain_binary_frames(server, token):
    url = server.ws_url + f"?token={token}&format=msgpack"
    async with websockets.connect(url, compression=None) as ws:
        quotes = await quotes_after_subscribe(ws, binary=True)
    assert all(isinstance(q["bid"], float) and isinstance(q["ts"], int) for q in quotes)


async def test_an_unknown_format_is_told_in_json_then_closed_1003(server, token):
    async with websockets.connect(server.ws_url + f"?token={token}&format=cbor") as ws:
        error = json.loads(await asyncio.wait_for(ws.recv(), timeout(10)))
        assert error["code"] == "bad_request"
        assert "json or msgpack" in error["message"]
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), timeout(10))
    assert ws.close_code == 1003


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
async def test_context_takeover_compresses_every_frame_on_one_stream(context_server, token, fmt):
    factory = RecordingFactory()
    url = context_server.ws_url + f"?token={token}&format={fmt}"
    async with websockets.connect(url, extensions=[factory], compression=None) as ws:
        header = extensions_header(ws)
        assert header.startswith("permessage-deflate")
        assert "server_no_context_takeover" not in header
        await quotes_after_subscribe(ws, binary=fmt == "msgpack", count=20)
        # A request sent compressed by the client is read too.
        await ws.send(json.dumps({"op": "ping", "id": "p"}))
        while True:
            msgs = decode(await asyncio.wait_for(ws.recv(), timeout(10)), binary=fmt == "msgpack")
            if any(m.get("id") == "p" for m in msgs):
                break
    assert factory.seen
    assert all(factory.seen)


async def test_the_frame_limit_holds_for_a_compressed_request_after_inflating(server, token):
    async with websockets.connect(server.ws_url + f"?token={token}") as ws:
        assert "permessage-deflate" in extensions_header(ws)
        await asyncio.wait_for(ws.recv(), timeout(10))  # welcome
        # 100 KB of one letter: a few hundred bytes on the wire, over 64 KiB inflated.
        await ws.send(json.dumps({"op": "ping", "pad": "x" * 100_000}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), timeout(10)))
            if msg["type"] == "error":
                break
        assert msg["code"] == "message_too_large"
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), timeout(10))
    assert ws.close_code == 1009


async def test_a_request_inflating_past_twice_the_limit_is_dropped_uninflated(server, token):
    async with websockets.connect(server.ws_url + f"?token={token}") as ws:
        await asyncio.wait_for(ws.recv(), timeout(10))  # welcome
        await ws.send(json.dumps({"op": "ping", "pad": "x" * 1_000_000}))
        with pytest.raises(websockets.ConnectionClosed):
            await no_error_until_closed(ws)
    assert ws.close_code == 1006  # autobahn stops inflating and drops the TCP connection
