"""The resume ring of the in-memory quote store (feeds/publish/store.py).

What ``replay`` hands back.
"""

from __future__ import annotations

import pytest

from feeds.publish.store import MemoryStore, missed_since


def text(symbol: str, seq: int) -> str:
    return f'{{"type":"quote","symbol":"{symbol}","seq":{seq}}}'


async def filled(
    *, ring: int = 8, upto: int = 20, symbols: tuple[str, ...] = ("AAPL",)
) -> MemoryStore:
    """A store whose symbols each got quotes 1..upto, one batch per seq as the ticker saves them."""
    store = MemoryStore(ring=ring)
    for seq in range(1, upto + 1):
        await store.save([(s, seq, text(s, seq)) for s in symbols])
    return store


async def test_replay_gives_the_quotes_above_since_in_seq_order():
    store = await filled()
    got = await store.replay({"AAPL": 16})
    assert got == {"AAPL": [text("AAPL", n) for n in (17, 18, 19, 20)]}


async def test_replay_of_an_up_to_date_client_is_empty_not_none():
    store = await filled()
    assert await store.replay({"AAPL": 20}) == {"AAPL": []}


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (12, list(range(13, 21))),  # the ring's oldest is 13: exactly reaches back
        (11, None),  # 12 has left the ring
        (0, None),
        (21, None),  # ahead of the newest seq: not this numbering
    ],
)
async def test_the_ring_holds_the_last_n_quotes_and_no_more(since, expected):
    store = await filled(ring=8, upto=20)
    want = None if expected is None else [text("AAPL", n) for n in expected]
    assert await store.replay({"AAPL": since}) == {"AAPL": want}


async def test_each_symbol_is_answered_on_its_own():
    store = await filled(symbols=("AAPL", "EUR/USD"))
    await store.save([("AAPL", 21, text("AAPL", 21))])
    got = await store.replay({"AAPL": 19, "EUR/USD": 20, "NOPE": 3})
    assert got == {"AAPL": [text("AAPL", 20), text("AAPL", 21)], "EUR/USD": [], "NOPE": None}


async def test_a_ring_of_zero_turns_resume_off():
    store = await filled(ring=0)
    assert await store.replay({"AAPL": 20, "MSFT": 3}) == {"AAPL": None, "MSFT": None}
    assert await store.latest(["AAPL"]) == {"AAPL": (20, text("AAPL", 20))}


async def test_a_numbering_restart_empties_the_ring():
    store = await filled(upto=20)
    await store.save([("AAPL", 1, "new-1")])
    await store.save([("AAPL", 2, "new-2")])
    assert await store.replay({"AAPL": 0}) == {"AAPL": ["new-1", "new-2"]}
    assert await store.replay({"AAPL": 15}) == {"AAPL": None}


async def test_a_symbol_without_quotes_has_missed_nothing_at_seq_0():
    store = await filled()
    assert await store.replay({"NEWCO": 0, "OTHER": 1}) == {"NEWCO": [], "OTHER": None}


RING = [(5, "e"), (4, "d"), (3, "c")]


@pytest.mark.parametrize(
    ("newest_first", "after", "newest", "expected"),
    [
        (RING, 2, 5, ["c", "d", "e"]),  # reaches back exactly
        (RING, 3, 5, ["d", "e"]),
        (RING, 5, 5, []),
        (RING, 6, 5, None),  # ahead of the newest seq
        (RING, 1, 5, None),  # 2 is gone
        (RING, 3, 6, None),  # the ring lags the latest quote
        # a restart left old ones
        ([(2, "b"), (1, "a"), (900, "old"), (899, "old")], 0, 2, ["a", "b"]),
        ([(2, "b"), (1, "a"), (900, "old"), (899, "old")], 898, 2, None),
        ([(5, "e"), (3, "c")], 2, 5, None),  # a hole
        ([], 0, 0, []),  # no quote yet, none missed
        ([], 0, 4, None),  # quotes, but no ring
    ],
)
def test_missed_since_needs_an_unbroken_run_from_the_newest_down_to_after(
    newest_first, after, newest, expected
):
    assert missed_since(newest_first, after, newest) == expected


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("FEED_RESUME_RING", "-1", "FEED_RESUME_RING"),
        ("FEED_RESUME_RING", "lots", "whole number"),
        ("FEED_RECONNECT_GRACE_S", "nan", "finite"),
        ("FEED_RECONNECT_GRACE_S", "-2", "FEED_RECONNECT_GRACE_S"),
        ("FEED_MAX_CONNECTION_AGE_S", "soon", "FEED_MAX_CONNECTION_AGE_S"),
    ],
)
def test_a_bad_resume_or_reconnect_setting_stops_start_up_naming_it(name, value, says):
    import os
    import subprocess
    import sys

    env = dict(os.environ, **{name: value})
    done = subprocess.run(
        [sys.executable, "-c", "import marketfeed.settings"],
        env=env, capture_output=True, text=True, check=False,
    )
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert says in done.stderr
    assert name in done.stderr
