"""One WebSocket connection of the client: its handshake, its state, and its reader.

The reader only decodes; every decision about what a message means is the
supervisor's (marketfeed_client/client.py), which gets the messages, and then
how the connection ended, on one inbox.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed

from marketfeed_client.messages import CloseCode, decode_frame

logger = logging.getLogger(__name__)

# Before a welcome tells us the heartbeat: the server's auth deadline (10 s) and then some.
FIRST_MESSAGE_S = 30.0
# Silence allowed on top of two heartbeat intervals before a connection counts as dead.
SILENCE_MARGIN_S = 5.0


@dataclass(eq=False)
class Link:
    """One WebSocket connection and what the supervisor knows of it."""

    ws: Any
    number: int
    epoch: str = ""
    idle_s: float = FIRST_MESSAGE_S
    subscribe_id: str = ""
    last_error: str = ""

    def heard_welcome(self, heartbeat_s: object) -> None:
        """Allow two of the server's heartbeat intervals of silence, and a margin."""
        number = isinstance(heartbeat_s, int | float) and not isinstance(heartbeat_s, bool)
        if number and heartbeat_s > 0:
            self.idle_s = 2 * heartbeat_s + SILENCE_MARGIN_S


@dataclass(frozen=True)
class Closed:
    """How a link ended: the close code the server sent (1006 when none)."""

    code: int
    reason: str


@dataclass(frozen=True)
class DialFailed:
    error: BaseException


def handshake(
    url: str, token: str | None, auth: str, wire_format: str
) -> tuple[str, dict[str, str]]:
    """The URL and headers of a handshake: the credentials (unless by message) and the format."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    headers: dict[str, str] = {}
    if token is not None and auth == "header":
        headers["Authorization"] = f"Token {token}"
    elif token is not None and auth == "query":
        query.append(("token", token))
    if wire_format != "json":
        query.append(("format", wire_format))
    return urlunsplit(parts._replace(query=urlencode(query))), headers


async def read_link(link: Link, inbox: asyncio.Queue[tuple[Link | None, Any]]) -> None:
    """Queue each message of ``link``, then how it ended; a silent link counts as lost."""
    try:
        while True:
            data = await asyncio.wait_for(link.ws.recv(), link.idle_s)
            try:
                messages = decode_frame(data)
            except ValueError as exc:  # bad JSON or MessagePack: one frame lost, not the stream
                logger.warning("link %d: undecodable frame dropped (%s)", link.number, exc)
                continue
            for msg in messages:
                await inbox.put((link, msg))
    except ConnectionClosed as exc:
        close = exc.rcvd
        ended = Closed(close.code, close.reason) if close else Closed(CloseCode.ABNORMAL, "")
    except TimeoutError:
        ended = Closed(CloseCode.ABNORMAL, f"no message for {link.idle_s:g} s")
    await inbox.put((link, ended))
