"""A ``Connection`` (feeds/deliver/connection.py) around a session, with a store that fails."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from feeds.core import protocol
from feeds.core.engine import Quote
from feeds.core.outbox import Outbox
from feeds.deliver.connection import Connection
from feeds.deliver.plan import Limits
from feeds.deliver.session import Session
from tests.timeouts import timeout


def text(symbol: str, seq: int) -> str:
    quote = Quote(symbol=symbol, bid=1.0, ask=1.1, bid_size=1, ask_size=1, last=1.05,
                  last_size=1, volume=seq, ts=seq)
    return protocol.encode_quote(quote, seq)


class Hub:
    def __init__(self) -> None:
        self.connections: dict[Any, None] = {}

    def register(self, conn: Any) -> None:
        self.connections[conn] = None

    async def unregister(self, conn: Any, symbols: list[str]) -> None:
        self.connections.pop(conn, None)

    async def join(self, member: Any, symbols: Any) -> None: ...

    async def leave(self, member: Any, symbols: Any) -> None: ...


class FlakyStore:
    """The store after a loss: its first ``failures`` reads of latest quotes fail."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.reads = 0

    async def epoch(self) -> str:
        return "e2"

    async def latest(self, symbols: Any) -> dict[str, tuple[int, str]]:
        self.reads += 1
        if self.reads <= self.failures:
            raise ConnectionError("store away")
        return {s: (3, text(s, 3)) for s in symbols}

    async def snapshot(self, symbols: Any) -> tuple[dict[str, tuple[int, str]], str]:
        return await self.latest(symbols), await self.epoch()


class Link:
    kind = "test"

    async def send_now(self, text: str) -> None: ...

    async def close(self, code: Any) -> None: ...


class User:
    pk = 7

    def get_username(self) -> str:
        return "alice"


async def test_a_resnapshot_retries_a_failing_store_then_sends_the_snapshot():
    sent: list[str] = []
    done = asyncio.Event()

    def write(texts: list[str], shared: bool) -> bool:
        sent.extend(texts)
        if any('"snapshot"' in t for t in texts):
            done.set()
        return True

    outbox = Outbox(
        send=None,  # type: ignore[arg-type]  # write() takes everything
        on_ready=lambda box: box.flush(),
        batch_frames=False,
        write=write,
    )
    loop = asyncio.get_running_loop()
    session = Session(
        outbox=outbox, limits=lambda: Limits(max_symbols=5, heartbeat_s=15),
        clock=loop.time, call_at=loop.call_at,
    )
    store = FlakyStore(failures=2)
    conn = Connection(
        session, Link(), hub=Hub(), store=store, user=User(), token=None, conn_id="c1"  # type: ignore[arg-type]
    )
    session.admit(user="alice", user_key="7", token_digest=None, epoch="e1")
    session.subs["AAPL"] = 40  # subscribed in the old epoch
    conn.on_epoch("e2")
    await asyncio.wait_for(done.wait(), timeout(10))
    snapshot = json.loads(next(t for t in sent if '"snapshot"' in t))
    assert snapshot["epoch"] == "e2"
    assert snapshot["seq"] == 3
    assert store.reads == 3
    await conn.end()
