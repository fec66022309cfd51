"""A small Server-Sent Events reader over httpx for the live tests (WHATWG event-stream parsing)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.schema import check_message


@dataclass
class Event:
    event: str = "message"
    data: list[str] = field(default_factory=list)
    id: str | None = None
    retry: int | None = None

    @property
    def message(self) -> dict[str, Any]:
        """The data as a protocol message, checked against docs/asyncapi.json."""
        return check_message(json.loads("\n".join(self.data)))


async def events(response: httpx.Response) -> AsyncIterator[Event]:
    """Every dispatched event of a streaming response, and each ``retry:`` field as an event.

    Each event's data is checked against docs/asyncapi.json as it arrives, and
    its ``event:`` must name the message's type, whether or not the test looks
    at it.
    """
    current = Event()
    async for line in response.aiter_lines():
        if line == "":
            if current.data:
                assert current.event == current.message["type"], current
                yield current
            current = Event()
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                current.data.append(value)
            elif name == "event":
                current.event = value
            elif name == "id":
                current.id = value
            elif name == "retry" and value.isdigit():
                yield Event(event="retry", retry=int(value))


class Reader:
    """One response's events, read in order by successive ``take`` calls."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._events = events(response)

    async def take(self, count: int, kinds: tuple[str, ...], within: float) -> list[Event]:
        """The next ``count`` events of ``kinds`` (others skipped), within ``within`` seconds."""
        found: list[Event] = []

        async def read() -> None:
            async for ev in self._events:
                if ev.event in kinds:
                    found.append(ev)
                    if len(found) == count:
                        return

        await asyncio.wait_for(read(), within)
        return found

    async def aclose(self) -> None:
        await self._events.aclose()
