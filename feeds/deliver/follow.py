"""``WatchlistFollow``: one connection following its user's watchlists, sans I/O.

The ``watchlists`` op (PROTOCOL.md "Watchlists") answers with the user's
lists and, unless it says ``"follow": false``, makes the connection follow
them: each ``watchlists.changed`` event naming its user asks the driver
(``feeds.deliver.connection``) to read the lists again and send them. Reads
are coalesced: while one is waiting for its turn, further changes need no
read of their own, since it will see them. A base-protocol client never
sends the op, so it never gets the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from feeds.core import events, protocol
from feeds.core.protocol import RequestId


@dataclass(frozen=True, slots=True)
class ReadWatchlists:
    """Read the user's lists and hand them to ``WatchlistFollow.answer``.

    ``request_id``: the ``watchlists`` request it answers; None: a change.
    """

    request_id: RequestId = None
    answers_request: bool = False


class WatchlistFollow:
    def __init__(self) -> None:
        self.following = False
        self._queued = False  # a change's read is waiting for its turn

    def request(self, request: protocol.Watchlists) -> ReadWatchlists:
        """The client asked: answer it with a read; follow or stop following as it says."""
        self.following = request.follow
        return ReadWatchlists(request.id, answers_request=True)

    def on_event(self, event: events.Event, user_key: str | None) -> ReadWatchlists | None:
        """A change of this user's lists, while following: read them again (unless queued)."""
        if (
            not self.following
            or self._queued
            or event.get("type") != events.WATCHLISTS_CHANGED
            or user_key not in events.texts(event, "users")
        ):
            return None
        self._queued = True
        return ReadWatchlists()

    def reading(self, action: ReadWatchlists) -> None:
        """``action``'s read starts now: a change from here on needs a read of its own."""
        if not action.answers_request:
            self._queued = False

    def answer(self, action: ReadWatchlists, lists: list[dict[str, Any]]) -> str | None:
        """The ``watchlists`` message for what was read; None for a change no longer followed."""
        if not action.answers_request and not self.following:
            return None
        return protocol.watchlists(lists, action.request_id)
