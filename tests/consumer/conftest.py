"""In-process consumer tests: the real ASGI app under WebsocketCommunicator, a real ticker."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from feeds.models import Instrument
from feeds.publish.build import build_ticker
from tests.conftest import timeout
from tests.schema import decode_frame

INSTRUMENTS = [
    ("AAPL", "equity", "0.01", "190.00", 100),
    ("MSFT", "equity", "0.01", "410.00", 100),
    ("EUR/USD", "fx", "0.00001", "1.08000", 1000),
    ("BTC-USD", "crypto", "0.01", "97000.00", 1),
]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Client:
    """A WebSocket client of the app: frames decoded, every message schema-checked."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.ws = communicator
        self.pending: list[dict[str, Any]] = []
        self.closed_with: int | None = None

    async def send(self, obj: Any) -> None:
        await self.ws.send_to(text_data=obj if isinstance(obj, str) else json.dumps(obj))

    async def recv(self, wait: float = 5.0) -> dict[str, Any]:
        while not self.pending:
            output = await self.ws.receive_output(timeout(wait))
            if output["type"] == "websocket.close":
                self.closed_with = output.get("code", 1000)
                raise ConnectionClosed(self.closed_with)
            self.pending.extend(decode_frame(output["text"]))
        return self.pending.pop(0)

    async def recv_until(
        self, pred, wait: float = 5.0
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The first message matching ``pred``, and every message before it."""
        before = []
        while True:
            msg = await self.recv(wait)
            if pred(msg):
                return msg, before
            before.append(msg)

    async def expect_close(self, wait: float = 5.0) -> int:
        try:
            while True:
                await self.recv(wait)
        except ConnectionClosed as exc:
            return exc.code

    async def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Send a request and return the reply that echoes its id (quotes skipped)."""
        await self.send(obj)
        msg, _ = await self.recv_until(lambda m: m.get("id") == obj["id"])
        return msg


class ConnectionClosed(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@pytest.fixture
def instruments(transactional_db):
    made = {}
    for symbol, asset, tick, price, lot in INSTRUMENTS:
        made[symbol], _ = Instrument.objects.update_or_create(
            symbol=symbol,
            defaults=dict(
                name=symbol, exchange="TEST", asset_class=asset, currency="USD",
                tick_size=Decimal(tick), lot_size=lot, reference_price=Decimal(price),
                volatility=0.3, quote_rate=5.0, active=True,
            ),
        )
    return made


def make_user(name: str):
    """A user with the password ``<name>-pass-123`` and an API token in ``.token``."""
    from django.contrib.auth.models import User

    from feeds.auth import issue_token

    u = User.objects.create_user(name, password=f"{name}-pass-123")
    u.token = issue_token(u)[0]
    return u


@pytest.fixture
def user(transactional_db):
    return make_user("alice")


@pytest.fixture
async def ticker(instruments):
    """A real ticker on a hand-driven clock: ``await ticker.advance(s)`` publishes what is due."""
    t = build_ticker()
    t.clock = clock = Clock()
    await t.reload(initial=True)

    async def advance(seconds: float = 1.0) -> int:
        clock.now += seconds
        return await t.tick()

    t.advance = advance
    yield t
    await t.stop()


@pytest.fixture
async def connect(user):
    """``await connect(path=..., headers=...)`` opens a connection.

    All are closed after the test.
    """
    from marketfeed.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def _connect(path: str | None = None, headers=None, *, expect_accept: bool = True):
        ws = WebsocketCommunicator(
            application, path or f"/ws/quotes/?token={user.token}", headers=headers or []
        )
        opened.append(ws)
        accepted, _ = await ws.connect(timeout(5))
        assert accepted is expect_accept
        return Client(ws)

    yield _connect
    for ws in opened:
        await ws.disconnect()


@pytest.fixture
async def alice(connect):
    client = await connect()
    welcome = await client.recv()
    assert welcome["type"] == "welcome"
    return client


deactivate = database_sync_to_async(
    lambda symbol, active: Instrument.objects.filter(symbol=symbol).update(active=active)
)
