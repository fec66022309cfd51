"""The embedded channel layer (feeds/publish/layers.py).

Channels' semantics, without a yield per message.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.exceptions import ChannelFull

from feeds.publish.layers import LocalChannelLayer


async def test_a_group_message_reaches_every_member_once_in_order():
    layer = LocalChannelLayer()
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("quotes.AAPL", a)
    await layer.group_add("quotes.AAPL", b)
    for seq in (1, 2, 3):
        await layer.group_send("quotes.AAPL", {"type": "quote", "q": seq})
    for channel in (a, b):
        assert [(await layer.receive(channel))["q"] for _ in range(3)] == [1, 2, 3]


async def test_a_discarded_member_gets_nothing_more():
    layer = LocalChannelLayer()
    a = await layer.new_channel()
    await layer.group_add("quotes.AAPL", a)
    await layer.group_discard("quotes.AAPL", a)
    await layer.group_send("quotes.AAPL", {"type": "quote"})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(a), 0.05)


async def test_a_whole_ticker_pass_is_queued_before_the_receiver_runs():
    """What batching needs: publishing never hands the loop to the receiver midway."""
    layer = LocalChannelLayer()
    hub = await layer.new_channel()
    await layer.group_add("quotes.AAPL", hub)
    seen_during_publish: list[int] = []
    all_seen = asyncio.Event()

    async def receiver() -> None:
        while True:
            seen_during_publish.append((await layer.receive(hub))["q"])
            if len(seen_during_publish) == 100:
                all_seen.set()

    task = asyncio.create_task(receiver())
    await asyncio.sleep(0)  # the receiver is now waiting
    for seq in range(100):
        await layer.group_send("quotes.AAPL", {"type": "quote", "q": seq})
        assert seen_during_publish == []
    await asyncio.wait_for(all_seen.wait(), 5)
    task.cancel()
    assert seen_during_publish == list(range(100))


async def test_receivers_get_their_own_copy_of_the_message():
    layer = LocalChannelLayer()
    a, b = await layer.new_channel(), await layer.new_channel()
    for channel in (a, b):
        await layer.group_add("g", channel)
    await layer.group_send("g", {"type": "x", "n": 1})
    first = await layer.receive(a)
    first["n"] = 2
    assert (await layer.receive(b))["n"] == 1


async def test_a_full_channel_refuses_a_direct_send_and_misses_group_sends():
    layer = LocalChannelLayer(capacity=2)
    a = await layer.new_channel()
    await layer.group_add("g", a)
    await layer.send(a, {"type": "x", "n": 1})
    await layer.group_send("g", {"type": "x", "n": 2})
    await layer.group_send("g", {"type": "x", "n": 3})  # dropped, as Channels' layers do
    with pytest.raises(ChannelFull):
        await layer.send(a, {"type": "x", "n": 4})
    assert [(await layer.receive(a))["n"] for _ in range(2)] == [1, 2]
