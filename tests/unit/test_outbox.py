"""The per-connection outbox (feeds/core/outbox.py): batching, pausing and conflation."""

from __future__ import annotations

import json

import pytest

from feeds.core.outbox import Outbox


class Recorder:
    """A fake transport: ``send`` records frames, ``on_ready`` records schedulings."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.shared: list[bool] = []
        self.ready: list[Outbox] = []

    async def send(self, text: str, shared: bool) -> None:
        self.frames.append(text)
        self.shared.append(shared)

    def on_ready(self, outbox: Outbox) -> None:
        self.ready.append(outbox)


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def make(rec: Recorder, *, batch_frames: bool = True) -> Outbox:
    return Outbox(send=rec.send, on_ready=rec.on_ready, batch_frames=batch_frames)


async def flushed(box: Outbox) -> None:
    pending = box.flush()
    if pending is not None:
        await pending


def q(symbol: str, seq: int) -> str:
    return json.dumps({"type": "quote", "symbol": symbol, "seq": seq}, separators=(",", ":"))


def put(box: Outbox, symbol: str, seq: int, prev: int | None = None) -> None:
    """Hand the outbox quote ``seq``, after ``prev`` (default: the one before it, no gap)."""
    box.quote(symbol, seq, q(symbol, seq), seq - 1 if prev is None else prev)


def gap(symbol: str, seq: int, prev: int) -> str:
    """What the client is sent for quote ``seq`` when the last it got was ``prev``."""
    return json.dumps(
        {"type": "quote", "symbol": symbol, "seq": seq, "prev_seq": prev}, separators=(",", ":")
    )


def c(n: int) -> str:
    return json.dumps({"type": "pong", "id": n}, separators=(",", ":"))


def sent(rec: Recorder) -> list[str]:
    """Every message sent, in order, with batched frames split into their elements."""
    out: list[str] = []
    for frame in rec.frames:
        data = json.loads(frame)
        items = data if isinstance(data, list) else [data]
        out.extend(json.dumps(item, separators=(",", ":")) for item in items)
    return out


# --- keeping up ----------------------------------------------------------------------


@pytest.mark.parametrize("batch_frames", [True, False])
async def test_one_message_goes_out_as_one_frame_of_its_own_text(rec, batch_frames):
    box = make(rec, batch_frames=batch_frames)
    put(box, "AAPL", 1)
    await flushed(box)
    box.control(c(1))
    await flushed(box)
    assert rec.frames == [q("AAPL", 1), c(1)]


async def test_several_messages_before_a_flush_go_out_as_one_json_array_frame_when_batching(rec):
    box = make(rec, batch_frames=True)
    put(box, "AAPL", 1)
    box.control(c(1))
    put(box, "AAPL", 2)
    await flushed(box)
    assert rec.frames == ["[" + ",".join([q("AAPL", 1), c(1), q("AAPL", 2)]) + "]"]
    assert json.loads(rec.frames[0]) == [
        json.loads(q("AAPL", 1)),
        json.loads(c(1)),
        json.loads(q("AAPL", 2)),
    ]


async def test_several_messages_before_a_flush_go_out_as_separate_frames_without_batching(rec):
    box = make(rec, batch_frames=False)
    put(box, "AAPL", 1)
    box.control(c(1))
    put(box, "MSFT", 1)
    await flushed(box)
    assert rec.frames == [q("AAPL", 1), c(1), q("MSFT", 1)]


async def test_quotes_are_not_conflated_while_the_client_keeps_up(rec):
    box = make(rec)
    for seq in range(1, 6):
        put(box, "AAPL", seq)
    await flushed(box)
    assert sent(rec) == [q("AAPL", seq) for seq in range(1, 6)]
    assert box.conflated == 0


async def test_on_ready_is_called_once_per_flush_cycle(rec):
    box = make(rec)
    put(box, "AAPL", 1)
    box.control(c(1))
    put(box, "MSFT", 1)
    assert rec.ready == [box]
    assert box.scheduled
    await flushed(box)
    assert not box.scheduled
    box.control(c(2))
    put(box, "AAPL", 2)
    assert rec.ready == [box, box]


async def test_a_flush_with_nothing_queued_sends_nothing(rec):
    box = make(rec)
    await flushed(box)
    put(box, "AAPL", 1)
    await flushed(box)
    await flushed(box)
    assert rec.frames == [q("AAPL", 1)]
    assert not box.scheduled


async def test_a_flush_sends_each_message_once(rec):
    box = make(rec)
    put(box, "AAPL", 1)
    await flushed(box)
    put(box, "AAPL", 2)
    await flushed(box)
    assert rec.frames == [q("AAPL", 1), q("AAPL", 2)]
    assert box.pending == 0


async def test_single_messages_are_marked_shareable_and_batches_are_not(rec):
    box = make(rec)
    put(box, "AAPL", 1)
    await flushed(box)
    put(box, "AAPL", 2)
    put(box, "MSFT", 1)
    await flushed(box)
    assert rec.shared == [True, False]
    unbatched = make(rec, batch_frames=False)
    put(unbatched, "AAPL", 3)
    put(unbatched, "MSFT", 2)
    await flushed(unbatched)
    assert rec.shared[2:] == [True, True]


# --- a slow client -------------------------------------------------------------------


async def test_while_paused_quotes_for_one_symbol_conflate_to_the_newest(rec):
    box = make(rec)
    box.pause()
    for seq in range(1, 6):
        put(box, "AAPL", seq)
    assert box.pending == 1
    assert box.conflated == 4
    box.resume()
    await flushed(box)
    assert rec.frames == [gap("AAPL", 5, 0)]  # the client got nothing of AAPL before seq 5


async def test_quotes_sent_counts_what_reaches_the_wire_not_what_was_conflated(rec):
    box = make(rec)
    put(box, "AAPL", 1)
    box.control(c(1))  # a reply is not a quote
    assert box.quotes_sent == 1
    box.pause()
    for seq in range(2, 6):
        put(box, "AAPL", seq)
    box.forget("AAPL")  # an unsubscribe while held: this one never goes either
    put(box, "MSFT", 1)
    assert box.quotes_sent == 1
    box.resume()
    await flushed(box)
    assert box.quotes_sent == 2
    assert box.conflated == 3


async def test_while_paused_nothing_is_scheduled_or_sent(rec):
    box = make(rec)
    box.pause()
    put(box, "AAPL", 1)
    box.control(c(1))
    assert rec.ready == []
    assert not box.scheduled
    await flushed(box)  # even if flushed anyway, held messages stay held
    assert rec.frames == []
    assert box.pending == 2


async def test_while_paused_quotes_of_different_symbols_are_held_side_by_side(rec):
    box = make(rec)
    box.pause()
    put(box, "AAPL", 1)
    put(box, "MSFT", 1)
    put(box, "AAPL", 2)
    assert box.conflated == 1
    box.resume()
    await flushed(box)
    assert sent(rec) == [q("MSFT", 1), gap("AAPL", 2, 0)]


async def test_a_newer_held_quote_moves_behind_a_later_control_message(rec):
    box = make(rec, batch_frames=False)
    box.pause()
    put(box, "AAPL", 1)
    box.control(c(1))
    put(box, "AAPL", 2)
    box.resume()
    await flushed(box)
    # The client never sees seq 2 before a reply it would have seen seq 1 before.
    assert rec.frames == [c(1), gap("AAPL", 2, 0)]


async def test_control_messages_are_never_dropped_while_paused(rec):
    box = make(rec)
    box.pause()
    for n in range(100):
        box.control(c(n))
        put(box, "AAPL", n + 1)
    assert box.conflated == 99
    assert box.pending == 101
    box.resume()
    await flushed(box)
    assert sent(rec) == [c(n) for n in range(100)] + [gap("AAPL", 100, 0)]


async def test_identical_control_messages_are_all_kept(rec):
    box = make(rec)
    box.pause()
    for _ in range(3):
        box.control(c(0))
    box.resume()
    await flushed(box)
    assert sent(rec) == [c(0)] * 3


async def test_forget_drops_a_held_quote_and_nothing_else(rec):
    box = make(rec)
    box.pause()
    put(box, "AAPL", 1)
    box.control(c(1))
    put(box, "MSFT", 1)
    box.forget("AAPL")
    assert box.pending == 2
    box.forget("NOT-HELD")
    assert box.pending == 2
    box.resume()
    await flushed(box)
    assert sent(rec) == [c(1), q("MSFT", 1)]


async def test_resume_queues_held_messages_in_order_and_schedules_a_flush(rec):
    box = make(rec, batch_frames=False)
    box.pause()
    box.control(c(1))
    put(box, "AAPL", 1)
    box.control(c(2))
    put(box, "MSFT", 1)
    box.resume()
    assert not box.paused
    assert box.scheduled
    assert rec.ready == [box]
    assert box.pending == 4
    await flushed(box)
    assert rec.frames == [c(1), q("AAPL", 1), c(2), q("MSFT", 1)]
    assert box.pending == 0


async def test_resume_with_nothing_waiting_schedules_nothing(rec):
    box = make(rec)
    box.pause()
    box.resume()
    assert rec.ready == []
    assert not box.scheduled


async def test_messages_queued_before_a_pause_go_out_before_held_ones_in_one_cycle(rec):
    box = make(rec, batch_frames=False)
    put(box, "AAPL", 1)
    box.control(c(1))
    box.pause()
    put(box, "AAPL", 2)
    put(box, "AAPL", 3)
    box.control(c(2))
    box.resume()
    # The flush scheduled before the pause is still due: no second scheduling.
    assert rec.ready == [box]
    await flushed(box)
    assert rec.frames == [q("AAPL", 1), c(1), gap("AAPL", 3, 1), c(2)]
    assert box.conflated == 1


async def test_after_resume_the_outbox_queues_and_schedules_as_before(rec):
    box = make(rec)
    box.pause()
    put(box, "AAPL", 1)
    box.resume()
    await flushed(box)
    put(box, "AAPL", 2)
    put(box, "AAPL", 3)
    assert rec.ready == [box, box]
    await flushed(box)
    assert sent(rec) == [q("AAPL", 1), q("AAPL", 2), q("AAPL", 3)]
    assert box.conflated == 0


def test_pending_counts_queued_and_held_messages():
    rec = Recorder()
    box = make(rec)
    assert box.pending == 0
    put(box, "AAPL", 1)
    box.control(c(1))
    assert box.pending == 2
    box.pause()
    put(box, "AAPL", 2)  # held beside the queued seq 1: not a conflation
    put(box, "MSFT", 1)
    box.control(c(2))
    assert box.pending == 5
    assert box.conflated == 0
    put(box, "MSFT", 2)
    assert box.pending == 5
    box.forget("MSFT")
    assert box.pending == 4


# --- the synchronous write path ----------------------------------------------------------


class Wire:
    """A transport that takes whole flushes at once, until told it cannot."""

    def __init__(self) -> None:
        self.writes: list[tuple[list[str], bool]] = []
        self.able = True

    def write(self, texts: list[str], shared: bool) -> bool:
        if self.able:
            self.writes.append((list(texts), shared))
        return self.able


@pytest.mark.parametrize("batch_frames", [True, False])
def test_a_flush_the_transport_takes_is_one_write_and_needs_no_await(rec, batch_frames):
    wire = Wire()
    box = Outbox(send=rec.send, write=wire.write, on_ready=rec.on_ready, batch_frames=batch_frames)
    put(box, "AAPL", 1)
    box.control(c(1))
    put(box, "MSFT", 1)
    assert box.flush() is None
    expected = [q("AAPL", 1), c(1), q("MSFT", 1)]
    if batch_frames:
        assert wire.writes == [(["[" + ",".join(expected) + "]"], False)]
    else:
        assert wire.writes == [(expected, True)]
    assert rec.frames == []


async def test_a_flush_the_transport_refuses_goes_out_frame_by_frame_in_order(rec):
    wire = Wire()
    wire.able = False
    box = Outbox(send=rec.send, write=wire.write, on_ready=rec.on_ready, batch_frames=False)
    put(box, "AAPL", 1)
    put(box, "AAPL", 2)
    pending = box.flush()
    assert pending is not None
    assert rec.frames == []
    await pending
    assert rec.frames == [q("AAPL", 1), q("AAPL", 2)]
    assert rec.shared == [True, True]
    assert box.flush() is None  # nothing left


# --- the gap marker: prev_seq ------------------------------------------------------------


async def test_a_quote_that_follows_on_keeps_the_shared_text(rec):
    box = make(rec, batch_frames=False)
    text = q("AAPL", 8)
    box.quote("AAPL", 8, text, 7)
    await flushed(box)
    assert rec.frames[0] is text
    assert rec.shared == [True]


async def test_a_quote_after_a_gap_carries_prev_seq_and_is_otherwise_the_same(rec):
    box = make(rec, batch_frames=False)
    put(box, "AAPL", 9, prev=7)
    await flushed(box)
    assert json.loads(rec.frames[0]) == {**json.loads(q("AAPL", 9)), "prev_seq": 7}


async def test_conflation_marks_the_gap_from_what_the_client_was_really_sent(rec):
    box = make(rec, batch_frames=False)
    put(box, "AAPL", 1)
    put(box, "MSFT", 1)
    box.pause()
    for seq in range(2, 7):  # handed over one by one: each follows on from the one before
        put(box, "AAPL", seq)
    put(box, "MSFT", 2)  # held alone: no gap
    box.resume()
    await flushed(box)
    assert rec.frames == [q("AAPL", 1), q("MSFT", 1), gap("AAPL", 6, 1), q("MSFT", 2)]


async def test_a_forgotten_held_quote_leaves_no_prev_seq_behind(rec):
    # A re-subscribe forgets the held quote and sends a snapshot; the next quote
    # follows on from the snapshot (the prev the consumer hands over).
    box = make(rec, batch_frames=False)
    box.pause()
    put(box, "AAPL", 5, prev=1)
    box.forget("AAPL")
    box.control(c(1))  # stands for the snapshot of seq 7
    put(box, "AAPL", 8, prev=7)
    box.resume()
    await flushed(box)
    assert rec.frames == [c(1), q("AAPL", 8)]


async def test_each_subscriber_gets_its_own_prev_seq_and_the_others_keep_the_shared_text():
    fast, slow = Recorder(), Recorder()
    a, b = make(fast, batch_frames=False), make(slow, batch_frames=False)
    b.pause()
    for seq in (1, 2, 3):
        a.quote("AAPL", seq, q("AAPL", seq), seq - 1)
        b.quote("AAPL", seq, q("AAPL", seq), seq - 1)
    b.resume()
    await flushed(a)
    await flushed(b)
    assert fast.frames == [q("AAPL", 1), q("AAPL", 2), q("AAPL", 3)]
    assert slow.frames == [gap("AAPL", 3, 0)]
