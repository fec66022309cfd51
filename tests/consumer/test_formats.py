"""``?format=msgpack``: the same messages as MessagePack binary frames (PROTOCOL.md)."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest

from tests.conftest import timeout
from tests.consumer.conftest import Client, ConnectionClosed
from tests.schema import check_message


class MsgpackClient(Client):
    """A client of a msgpack connection: every server frame must be binary MessagePack."""

    def __init__(self, communicator) -> None:
        super().__init__(communicator)
        self.frames: list[Any] = []  # every decoded frame, to see batches as arrays

    async def recv(self, wait: float = 5.0) -> dict[str, Any]:
        while not self.pending:
            output = await self.ws.receive_output(timeout(wait))
            if output["type"] == "websocket.close":
                self.closed_with = output.get("code", 1000)
                raise ConnectionClosed(self.closed_with)
            assert output.get("text") is None, f"a text frame on a msgpack connection: {output}"
            data = msgpack.unpackb(output["bytes"])
            self.frames.append(data)
            items = data if isinstance(data, list) else [data]
            self.pending.extend(check_message(item) for item in items)
        return self.pending.pop(0)

    async def send_packed(self, obj: Any) -> None:
        await self.ws.send_to(bytes_data=obj if isinstance(obj, bytes) else msgpack.packb(obj))


@pytest.fixture
async def packed(connect, user):
    """alice on ``?format=msgpack``, welcomed."""
    client = MsgpackClient((await connect(f"/ws/quotes/?token={user.token}&format=msgpack")).ws)
    welcome = await client.recv()
    assert welcome["type"] == "welcome"
    assert welcome["user"] == "alice"
    return client


async def test_msgpack_quotes_carry_the_numbers_of_the_json_text_exactly(packed, ticker):
    await ticker.advance(10)
    await packed.request({"op": "subscribe", "symbols": ["AAPL", "EUR/USD"], "id": 1})
    await ticker.advance(10)
    latest = await ticker.store.latest(["EUR/USD"])
    seq, text = latest["EUR/USD"]
    quote, _ = await packed.recv_until(lambda m: m.get("symbol") == "EUR/USD" and m["seq"] == seq)
    expected = json.loads(text)
    assert quote == expected
    # Same kinds too: a price stays a float, a size and the timestamp stay integers.
    assert {k: type(v) for k, v in quote.items()} == {k: type(v) for k, v in expected.items()}


async def test_msgpack_requests_in_binary_frames_get_the_same_replies(packed, ticker):
    await packed.send_packed({"op": "ping", "id": 7})
    pong, _ = await packed.recv_until(lambda m: m.get("id") == 7)
    assert pong["type"] == "pong"
    await packed.send_packed({"op": "subscribe", "symbols": ["msft"], "id": "s"})
    reply, _ = await packed.recv_until(lambda m: m.get("id") == "s")
    assert reply == {"type": "subscribed", "id": "s", "symbols": ["MSFT"]}
    await packed.send_packed({"op": "subscribe", "symbols": ["NOPE"], "id": 8})
    error, _ = await packed.recv_until(lambda m: m.get("id") == 8)
    assert error["code"] == "unknown_symbol"
    assert error["symbols"] == ["NOPE"]


async def test_a_batch_is_one_msgpack_array_of_the_messages(packed, ticker, settings):
    settings.FEED_BATCH_FRAMES = True
    await ticker.advance(10)
    await packed.send_packed({"op": "subscribe", "symbols": ["AAPL", "MSFT", "BTC-USD"], "id": 1})
    await packed.recv_until(lambda m: m["type"] == "snapshot" and m["symbol"] == "BTC-USD")
    batches = [f for f in packed.frames if isinstance(f, list)]
    assert batches
    assert all(len(b) > 1 for b in batches)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\xc1", "bad_json"),  # a byte MessagePack never uses
        (b"\x92\x01", "bad_json"),  # an array cut short
        (msgpack.packb({"op": "ping"}) + b"\x01", "bad_json"),  # two objects in one frame
        (b"\x81\x01\xa4ping", "bad_json"),  # an integer map key
        (b"\xa2\xff\xfe", "bad_json"),  # a string that is not UTF-8
        (b"\x91" * 5000 + b"\x00", "bad_request"),  # nested past the decoder's stack
        (msgpack.packb([1, 2]), "bad_request"),  # not a map
        (msgpack.packb({"op": b"ping"}), "bad_request"),  # bin where a string belongs
        (msgpack.packb({"op": "subscribe", "symbols": [1.5]}), "bad_request"),
    ],
)
async def test_bad_msgpack_is_an_error_and_the_connection_stays(packed, frame, code):
    await packed.send_packed(frame)
    error = await packed.recv()
    assert error["type"] == "error", error
    assert error["code"] == code, error
    pong = await packed.request({"op": "ping", "id": 2})
    assert pong["type"] == "pong"


async def test_json_text_requests_are_still_read_on_a_msgpack_connection(packed):
    await packed.send('{"op":"ping","id":99999999999999999999999}')
    pong = await packed.recv()
    assert pong["type"] == "pong"
    # Beyond 64 bits MessagePack has no integer: the id comes back as its digits.
    assert pong["id"] == "99999999999999999999999"


async def test_a_binary_frame_on_a_json_connection_stays_bad_request(alice):
    await alice.ws.send_to(bytes_data=msgpack.packb({"op": "ping", "id": 1}))
    error = await alice.recv()
    assert error["code"] == "bad_request"


@pytest.mark.parametrize("query", ["format=xml", "format=json&format=msgpack", "format="])
async def test_an_unknown_format_is_explained_in_json_then_closed_1003(connect, user, query):
    client = await connect(f"/ws/quotes/?token={user.token}&{query}")
    error = await client.recv()
    assert error["type"] == "error"
    assert error["code"] == "bad_request"
    assert "json or msgpack" in error["message"]
    assert await client.expect_close() == 1003


async def test_format_is_case_insensitive_and_json_is_the_default(connect, user):
    for query in ("format=MsgPack", ""):
        client = await connect(f"/ws/quotes/?token={user.token}&{query}")
        output = await client.ws.receive_output(timeout(5))
        assert (output.get("bytes") is not None) is (query != "")
