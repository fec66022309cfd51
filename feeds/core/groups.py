"""Symbol to channel-layer group name, and the other group names the feed uses.

Channels allows group names of ``[A-Za-z0-9._-]`` under 100 characters, so a
symbol such as ``EUR/USD`` cannot be pasted in. Each character outside
``[A-Z0-9.-]`` is written as ``_XX`` per UTF-8 byte: the mapping is injective,
since ``_`` itself is escaped too, and the longest symbol (20 characters, all
escaped) gives 6 + 60 characters.
"""

from __future__ import annotations

import re

GROUP_PREFIX = "q."
# Control messages for the ticker (instrument changes made in the admin).
TICKER_CONTROL_GROUP = "feed.ticker"
# Control messages for every server process (e.g. revoked tokens).
SERVERS_CONTROL_GROUP = "feed.servers"

_PLAIN = re.compile(r"[A-Z0-9.\-]")


def group_for_symbol(symbol: str) -> str:
    """Return the channel-layer group that carries quotes for ``symbol``."""
    return GROUP_PREFIX + "".join(
        ch if _PLAIN.fullmatch(ch) else "".join(f"_{b:02X}" for b in ch.encode())
        for ch in symbol
    )
