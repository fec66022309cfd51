"""marketfeed_client: an asyncio client of the marketfeed quote stream, and its CLI.

    async with FeedClient("ws://127.0.0.1:8000/ws/quotes/", ["AAPL"], token=TOKEN) as feed:
        async for quote in feed.quotes():
            print(quote.symbol, quote.bid, quote.ask)

See docs/CLIENT.md. No Django here: it depends on ``websockets``; the
``msgpack`` extra adds ``wire_format="msgpack"``, the ``cli`` extra (rich)
the CLI's live table.
"""

from __future__ import annotations

from marketfeed_client.backoff import Backoff
from marketfeed_client.client import FeedClient
from marketfeed_client.messages import (
    AuthenticationError,
    CloseCode,
    ConnectionState,
    Event,
    FeedError,
    Gap,
    Quote,
    ServerError,
    StateChange,
    Status,
)

__all__ = [
    "AuthenticationError",
    "Backoff",
    "CloseCode",
    "ConnectionState",
    "Event",
    "FeedClient",
    "FeedError",
    "Gap",
    "Quote",
    "ServerError",
    "StateChange",
    "Status",
]
