"""The embedded default's channel layer: Channels' in-memory layer, minus its per-message costs.

``InMemoryChannelLayer`` is correct but was written for a handful of
consumers, not for a ticker publishing tens of thousands of messages a second
(docs/STACK.md, "In-memory layer", and the profile in docs/PERFORMANCE.md):

- ``group_send`` starts a task per member and awaits them all, so the
  publisher yields to the event loop after every message. A ticker pass of
  many quotes then reaches the hub one quote per loop turn, and the hub
  flushes once per quote: several quotes per frame (``FEED_BATCH_FRAMES``)
  never happen, and every quote costs a socket write per client.
- every ``send`` deep-copies the message, and every ``receive`` and
  ``group_send`` walks every channel and group member to expire old ones.

This layer keeps the same semantics (groups, channel capacity, message and
group expiry) and changes only the costs: ``group_send`` puts the message on
each member's queue at once, without yielding, so a whole ticker pass lands
in the hub's queue before the hub runs; messages are copied shallowly (their
values are strings and numbers); expiry is swept at most once a second.

One thing it adds: an in-memory layer ends at its process, so revocations,
licence changes and watchlist changes sent to the servers' control group are
also written for the other processes of the machine (feeds/relay.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

from feeds import relay
from feeds.core.groups import SERVERS_CONTROL_GROUP

EXPIRY_SWEEP_S = 1.0
logger = logging.getLogger(__name__)


class LocalChannelLayer(InMemoryChannelLayer):  # type: ignore[misc]
    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self._next_sweep = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + EXPIRY_SWEEP_S
            super()._clean_expired()

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        self._put(channel, dict(message), raise_full=True)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        members = self.groups.get(group)
        if members:
            for channel in list(members):
                # As in Channels' layers, a full member misses a group message.
                self._put(channel, dict(message), raise_full=False)
        if group == SERVERS_CONTROL_GROUP and message.get("type") in relay.RELAYED:
            await _relay(message)

    def _put(self, channel: str, message: dict[str, Any], *, raise_full: bool) -> None:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            queue.put_nowait((time.time() + self.expiry, message))
        except asyncio.QueueFull:
            if raise_full:
                raise ChannelFull(channel) from None


async def _relay(message: dict[str, Any]) -> None:
    """Hand a control event to the other processes of this machine (feeds.relay)."""
    try:
        await database_sync_to_async(relay.publish)(message)
    except Exception as exc:  # their periodic re-check still catches it
        logger.warning("could not relay %s to other processes (%s)", message.get("type"), exc)
