"""Control events between the processes of one machine that share no channel layer.

In the embedded default each process has its own in-memory channel layer, so
a revocation, a licence change or a watchlist write made from another process
(``manage.py shell``, a second command, a cron job, another worker) would
reach the running server only at its periodic re-check, or never. Here the
embedded layer also writes those events (``RELAYED``) to the ``ServerEvent``
table, and every server process reads the rows other processes wrote, every
``FEED_RELOAD_INTERVAL_S``, into its hub as if the layer had brought them:
within a second, as PROTOCOL.md promises. With Redis the layer itself spans
the processes and nothing is written here.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from typing import Any

from django.utils import timezone

from feeds.core import events
from feeds.models import ServerEvent

# The events a connection must hear of wherever they were made.
RELAYED = frozenset(
    {events.AUTH_REVOKED, events.ENTITLEMENTS_CHANGED, events.WATCHLISTS_CHANGED}
)
# Rows older than this are deleted by the next write: a reader polls far more often.
KEEP_S = 60.0
# This process, as the rows it writes name it: a reader skips its own (the layer brought them).
ORIGIN = f"{os.getpid()}.{secrets.token_hex(4)}"


def publish(event: dict[str, Any]) -> None:
    """Write ``event`` for the other processes (and forget rows nobody needs any more)."""
    ServerEvent.objects.create(payload=event, origin=ORIGIN)
    ServerEvent.objects.filter(created__lt=timezone.now() - timedelta(seconds=KEEP_S)).delete()


def newest_id() -> int:
    """Where a new reader starts: what was written before it is not its business."""
    row = ServerEvent.objects.order_by("-id").values_list("id", flat=True).first()
    return row or 0


def read_after(last_id: int) -> tuple[int, list[dict[str, Any]]]:
    """The events other processes wrote after row ``last_id``, and the newest row id seen."""
    rows = list(
        ServerEvent.objects.filter(id__gt=last_id)
        .order_by("id")
        .values_list("id", "origin", "payload")
    )
    if not rows:
        return last_id, []
    return rows[-1][0], [payload for _, origin, payload in rows if origin != ORIGIN]
