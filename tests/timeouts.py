"""One unit for every wait, scaled on slow machines (like websockets' tests)."""

from __future__ import annotations

import asyncio
import os

TIMEOUT_FACTOR = float(os.environ.get("MARKETFEED_TEST_TIMEOUT_FACTOR", "1"))


def timeout(seconds: float = 5.0) -> float:
    return seconds * TIMEOUT_FACTOR


async def stop(*tasks: asyncio.Future[object]) -> None:
    """Cancel tasks and wait until they have unwound.

    A cancelled task that is never awaited leaves its ``async with`` blocks
    (a WebSocket, a socket) unclosed until garbage collection, where the
    ResourceWarning then fails whichever test happens to be running.
    """
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
