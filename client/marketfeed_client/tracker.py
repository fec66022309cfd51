"""Per-symbol sequence tracking: gaps, duplicates, and where a resume starts.

Pure and synchronous. Every quote the client receives, from whichever
connection, goes through one ``SeqTracker``; that is what keeps the quote
iterator free of duplicates when two connections overlap (make-before-break)
or a resume replays quotes already seen, and what names every hole as a
``Gap``.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketfeed_client.messages import Gap, Quote


@dataclass
class _Last:
    epoch: str
    seq: int


class SeqTracker:
    """The newest (epoch, seq) delivered per symbol."""

    def __init__(self) -> None:
        self._last: dict[str, _Last] = {}
        # Symbols whose resume was refused: the gap their snapshot reveals says so.
        self._not_recovered: set[str] = set()
        # The epoch of the newest message delivered: the one a resume names.
        self._epoch: str | None = None

    def accept(self, quote: Quote) -> tuple[bool, Gap | None]:
        """Whether to deliver ``quote``, and the gap it reveals, if any.

        Within an epoch a seq not above the last one delivered is a duplicate
        (dropped); one above ``last + 1`` is a gap. A new epoch restarts the
        numbering: deliver, and report an ``epoch`` gap when the symbol had
        history.
        """
        last = self._last.get(quote.symbol)
        self._last[quote.symbol] = _Last(quote.epoch, quote.seq)
        self._epoch = quote.epoch
        if last is None:
            self._not_recovered.discard(quote.symbol)
            return True, None
        if last.epoch != quote.epoch:
            self._not_recovered.discard(quote.symbol)
            return True, Gap(quote.symbol, last.seq, quote.seq, "epoch", quote.epoch)
        if quote.seq <= last.seq:
            self._last[quote.symbol] = last  # a duplicate changes nothing
            return False, None
        if quote.seq == last.seq + 1:
            self._not_recovered.discard(quote.symbol)
            return True, None
        return True, Gap(quote.symbol, last.seq, quote.seq, self._reason(quote), quote.epoch)

    def _reason(self, quote: Quote) -> str:
        if quote.symbol in self._not_recovered:
            self._not_recovered.discard(quote.symbol)
            return "not_recovered"
        return "conflated" if quote.prev_seq is not None else "lost"

    def not_recovered(self, symbol: str) -> None:
        """The server could not replay ``symbol``: its next jump is a ``not_recovered`` gap."""
        if symbol in self._last:
            self._not_recovered.add(symbol)

    def forget(self, symbol: str) -> None:
        """No longer subscribed: a later subscription starts afresh, without a gap."""
        self._last.pop(symbol, None)
        self._not_recovered.discard(symbol)

    def since(self, symbols: list[str] | None = None) -> tuple[str | None, dict[str, int]]:
        """What a resuming ``subscribe`` sends: the current epoch and each symbol's last seq in it.

        Symbols last seen in an older epoch are left out: the server could not
        replay them anyway, and a snapshot will follow for them.
        """
        epoch = self._epoch
        if epoch is None:
            return None, {}
        names = self._last if symbols is None else [s for s in symbols if s in self._last]
        return epoch, {s: self._last[s].seq for s in names if self._last[s].epoch == epoch}
