"""``Session``: one client's quote stream as a plain object, sans I/O.

Everything a stream means lives here once, whatever carries it (a WebSocket,
Server-Sent Events, a future transport): the subscriptions and their limits,
snapshots, ``since`` and ``Last-Event-ID`` replay, wildcards, throttles, the
conflating outbox, entitlement drops, the re-snapshot on a new epoch, the
request rate limit and the ``reconnect`` advisory.

Requests, store reads and layer events go in as plain values; messages come
out through the outbox (the hub flushes it), and what the session cannot do
itself goes back to its driver (``feeds.deliver.connection``) as a value of
``feeds.deliver.plan``. The clock and timer are injected; nothing awaits.

A subscription opens in two steps around the reads it needs (the hub joining
the symbol's group, the store's latest quotes and rings): ``begin`` routes
the symbols here and holds their live quotes back, ``finish`` sends the reply
and each symbol's start (a snapshot, a ``halted`` status, or the replayed
quotes), then the quotes held meanwhile that are newer. The store is written
before a quote is published, so nothing falls between the two.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable

from feeds.core import events, protocol
from feeds.core.limits import TokenBucket
from feeds.core.outbox import Outbox
from feeds.core.protocol import CloseCode, ErrorCode, ProtocolError, RequestId, State
from feeds.core.throttle import CallAt, Throttle
from feeds.deliver.plan import (
    MAX_AGE_JITTER,
    Action,
    Active,
    AddToWildcard,
    Close,
    Limits,
    Opening,
    RecheckEntitlements,
    Visible,
    check_subscribe,
    refuse_unknown,
    wildcard_addition,
)
from feeds.deliver.resume import Found, Latest

# Quotes of one symbol kept while its start is read. A read is one store round
# trip, so more than this means the store is stalling: the oldest go, and the
# client sees the gap as a prev_seq.
HOLD_BACK_MAX = 256


class Phase(enum.Enum):
    NEW = "new"  # not admitted yet (a WebSocket waiting for its auth message)
    OPEN = "open"
    CLOSED = "closed"  # told to go, or gone: nothing more is sent


class Session:
    def __init__(
        self,
        *,
        outbox: Outbox,
        limits: Callable[[], Limits],
        clock: Callable[[], float],
        call_at: CallAt,
        bucket: TokenBucket | None = None,
        on_error: Callable[[ErrorCode], None] = lambda code: None,
    ) -> None:
        self.outbox = outbox
        self._limits = limits
        self.throttle = Throttle(clock=clock, call_at=call_at, release=outbox.quote)
        self.bucket = bucket
        self._on_error = on_error
        self.phase = Phase.NEW
        self.user_key: str | None = None
        self.token_digest: str | None = None
        # symbol -> seq of the newest quote or snapshot handed on; None while its start is read.
        self.subs: dict[str, int | None] = {}
        self._backlog: dict[str, deque[tuple[int, str]]] = {}
        # symbol -> the new epoch, for a re-snapshot the store had nothing for yet:
        # the symbol's first quote of that epoch goes out as its snapshot.
        self._first_is_snapshot: dict[str, str] = {}
        # The throttle of a "*" subscription, for instruments it takes in later; None: no "*".
        self.wildcard_throttle_ms: int | None = None
        self._reconnect_announced = False

    @property
    def limits(self) -> Limits:
        """The limits in force now (read at each use: an operator may change them)."""
        return self._limits()

    def admit(
        self,
        *,
        user: str,
        user_key: str,
        token_digest: str | None,
        epoch: str,
        request_id: RequestId = None,
    ) -> None:
        """The client is who it says: welcome it."""
        self.phase = Phase.OPEN
        self.user_key, self.token_digest = user_key, token_digest
        limits = self.limits
        welcome = protocol.welcome(
            user=user, heartbeat_s=limits.heartbeat_s, max_symbols=limits.max_symbols,
            epoch=epoch, request_id=request_id,
        )
        self.outbox.control(welcome)

    def max_age_delay(self, jitter: float) -> float | None:
        """Seconds until the ``max_age`` reconnect (``jitter`` in [0, 1)); None: no maximum age."""
        age = self.limits.max_connection_age_s
        return age * (1 + MAX_AGE_JITTER * jitter) if age > 0 else None

    def allow_request(self, now: float) -> bool:
        """Spend one request of the rate limit; False: answer ``rate_limited``."""
        return self.bucket is None or self.bucket.take(now)

    def refuse(self, code: ErrorCode, message: str, request_id: RequestId = None) -> str:
        """The error text of a refusal that ends the stream; the session is closed."""
        self.phase = Phase.CLOSED
        self._on_error(code)
        return protocol.error(code, message, request_id=request_id)

    def reply_error(self, exc: ProtocolError) -> None:
        """Answer a request with its error; the stream goes on."""
        self._on_error(exc.code)
        self.outbox.control(exc.to_text())

    # --- requests -----------------------------------------------------------------------

    def plan_subscribe(
        self,
        request: protocol.Subscribe,
        *,
        active: Active,
        visible: Visible,
        covered: Active | None = None,
    ) -> Opening:
        """Check a subscribe against what the driver read (``plan.check_subscribe``)."""
        opening = check_subscribe(
            request, self.subs, self.limits, active=active, visible=visible, covered=covered
        )
        if request.wildcard:
            self.wildcard_throttle_ms = request.throttle_ms
        return opening

    def plan_wildcard_add(self, covered: Active) -> Opening | None:
        """Take instruments listed after a ``*`` subscribe in, as a subscribe of them would.

        ``covered``: those of the new instruments ``*`` covers for this user.
        Those past ``max_symbols`` are left out and named in a
        ``too_many_symbols`` error; None when nothing is to be opened.
        """
        if self.wildcard_throttle_ms is None or self.phase is not Phase.OPEN:
            return None
        opening, refused = wildcard_addition(
            covered, self.subs, self.limits, self.wildcard_throttle_ms
        )
        if refused is not None:
            self.reply_error(refused)
        return opening

    def begin(self, opening: Opening) -> None:
        """Route ``opening``'s symbols here; their live quotes are held until ``finish``."""
        for symbol in opening.symbols:
            self._hold(symbol)
            self.outbox.forget(symbol)  # what finish() sends supersedes it
            self.throttle.drop(symbol)

    def finish(self, opening: Opening, *, latest: Latest, epoch: str, found: Found) -> None:
        """Reply, then send each symbol its start and the newer quotes held meanwhile.

        ``latest``, ``epoch``: the store's, read after ``begin``; ``found``: the
        rings it returned for ``opening.resume.reachable(...)`` (empty without resume).
        """
        resume = opening.resume
        missed = resume.missed(opening.symbols, latest, found) if resume is not None else {}
        recovered = resume.recovered(opening.symbols, missed) if resume is not None else None
        self.outbox.control(protocol.subscribed(opening.symbols, opening.request_id, recovered))
        for symbol in opening.symbols:
            if symbol in self.subs:  # not gone meanwhile (unsubscribed, revoked)
                self._start(
                    symbol,
                    opening.active[symbol],
                    missed.get(symbol),
                    latest,
                    epoch,
                    opening.throttle_ms,
                )

    def unsubscribe(self, request: protocol.Unsubscribe, *, known: Active) -> list[str]:
        """Stop ``request``'s symbols and reply; returns those the hub must stop routing here.

        ``known``: the instruments among the symbols this session does not hold
        (``unknown_symbols_in``), so that an unknown one is refused.
        """
        unsure = [s for s in request.symbols if s not in self.subs]
        if unsure:
            refuse_unknown(unsure, known, request.id)
        symbols = request.symbols
        if request.wildcard:  # "*" ends the wildcard and takes everything with it
            self.wildcard_throttle_ms = None
            symbols += tuple(sorted(s for s in self.subs if s not in symbols))
        leaving = [s for s in symbols if s in self.subs]
        for symbol in leaving:
            self._forget(symbol)
        self.outbox.control(protocol.unsubscribed(symbols, request.id))
        return leaving

    def unknown_symbols_in(self, request: protocol.Unsubscribe) -> list[str]:
        """The symbols of an unsubscribe this session does not hold (to look up)."""
        return [s for s in request.symbols if s not in self.subs]

    def list_subscriptions(self, request: protocol.ListSubscriptions) -> None:
        listed = list(self.subs)
        if self.wildcard_throttle_ms is not None:
            listed.append(protocol.WILDCARD)
        self.outbox.control(protocol.subscriptions(listed, request.id))

    def pong(self, request: protocol.Ping, now_us: int) -> None:
        self.outbox.control(protocol.pong(now_us, request.id))

    # --- from the hub: the hot path -------------------------------------------------------

    def deliver_quote(self, symbol: str, seq: int, text: str) -> None:
        last = self.subs.get(symbol, -1)
        if last is None:  # its start is being read
            epoch = self._first_is_snapshot.pop(symbol, None)
            if epoch is not None:
                self.outbox.control(protocol.snapshot_from_quote(text, epoch))
                self.throttle.restart(symbol)
                self.subs[symbol] = seq
                return
            backlog = self._backlog.get(symbol)
            if backlog is not None:
                backlog.append((seq, text))
            return
        if last == -1 or seq <= last:
            return  # not subscribed, or not newer than what was sent
        self.subs[symbol] = seq
        throttled = self.throttle.entries
        if throttled and symbol in throttled:
            self.throttle.quote(symbol, seq, text, last)
        else:
            self.outbox.quote(symbol, seq, text, last)

    def deliver_status(self, symbol: str, text: str) -> None:
        if symbol in self.subs:
            self.throttle.flush(symbol)  # the quote before a halt goes out before the halt
            self.outbox.control(text)

    # --- from the hub: control ----------------------------------------------------------

    def on_event(self, event: events.Event) -> Action | None:
        """A message for every connection of the process: what, if anything, it asks of this one."""
        if self.phase is not Phase.OPEN:
            return None
        kind = event.get("type")
        if kind == events.AUTH_REVOKED:
            if self.token_digest in events.texts(event, "tokens") or self.user_key in events.texts(
                event, "users"
            ):
                return self.revoke()
        elif kind == events.INSTRUMENTS_ADDED and self.wildcard_throttle_ms is not None:
            symbols = events.texts(event, "symbols")
            return (
                AddToWildcard(tuple(s for s in symbols if s not in self.subs)) if symbols else None
            )
        elif kind == events.ENTITLEMENTS_CHANGED and self.user_key in events.texts(event, "users"):
            return RecheckEntitlements()
        return None

    def revoke(self) -> Close | None:
        """Its credentials no longer hold: ``unauthorized``, then 4401."""
        if self.phase is not Phase.OPEN:
            return None
        farewell = self.refuse(ErrorCode.UNAUTHORIZED, "credentials revoked")
        return Close(CloseCode.UNAUTHORIZED, farewell)

    def drop_revoked(self, symbols: list[str]) -> list[str]:
        """The user may no longer see ``symbols``: ``status`` ``revoked`` each, no quote after.

        Returns those that were subscribed, which the hub must stop routing here.
        """
        leaving = [s for s in symbols if s in self.subs]
        for symbol in leaving:
            self._forget(symbol)
            self.outbox.control(protocol.status(symbol, State.REVOKED))
        return leaving

    def begin_resnapshot(self) -> tuple[str, ...]:
        """Numbering restarted (a new epoch): hold every symbol until its new snapshot is out.

        Returns the symbols whose latest quotes the driver must read.
        """
        if self.phase is not Phase.OPEN:
            return ()
        symbols = tuple(self.subs)
        for symbol in symbols:
            self._hold(symbol)
        return symbols

    def finish_resnapshot(self, symbols: tuple[str, ...], *, latest: Latest, epoch: str) -> None:
        """Send each held symbol a snapshot of the new epoch, then its newer held quotes."""
        for symbol in symbols:
            if self.subs.get(symbol, -1) is not None:
                continue  # gone meanwhile
            self.outbox.forget(symbol)  # of the old epoch: the snapshot supersedes it
            if latest.get(symbol, (0, ""))[1]:
                self._start(symbol, True, None, latest, epoch, self._interval_ms(symbol))
            else:  # nothing of the new epoch stored yet: its first quote is the snapshot
                self._backlog.pop(symbol, None)
                self._first_is_snapshot[symbol] = epoch

    def resnapshot_failed(self, symbols: tuple[str, ...]) -> None:
        """No store to read: let quotes through without snapshots rather than hold them."""
        for symbol in symbols:
            if self.subs.get(symbol, -1) is None:
                self._release(symbol, 0)

    def announce_reconnect(self, within_s: float, reason: protocol.ReconnectReason) -> str | None:
        """The ``reconnect`` text to send at once, past the queue; None if already announced.

        One announcement per connection: a shutdown during a max-age grace keeps
        the first deadline, never a later one.
        """
        if self.phase is not Phase.OPEN or self._reconnect_announced:
            return None
        self._reconnect_announced = True
        return protocol.reconnect(within_s, reason)

    def going_away(self) -> Close | None:
        """The grace after a ``reconnect`` is over: close with 1001 (None if already closing)."""
        if self.phase is not Phase.OPEN:
            return None
        self.phase = Phase.CLOSED
        return Close(CloseCode.GOING_AWAY)

    def close(self) -> None:
        """The stream is over: drop every subscription and the throttle's timer."""
        self.phase = Phase.CLOSED
        self.throttle.close()
        self.subs.clear()
        self._backlog.clear()
        self._first_is_snapshot.clear()

    # --- internals ----------------------------------------------------------------------

    def _hold(self, symbol: str) -> None:
        self.subs[symbol] = None
        self._backlog[symbol] = deque(maxlen=HOLD_BACK_MAX)

    def _forget(self, symbol: str) -> None:
        del self.subs[symbol]
        self._backlog.pop(symbol, None)
        self._first_is_snapshot.pop(symbol, None)
        self.outbox.forget(symbol)
        self.throttle.drop(symbol)

    def _release(self, symbol: str, seq: int) -> None:
        """``symbol`` starts from ``seq``: hand on the newer quotes held meanwhile."""
        self.subs[symbol] = seq
        for held_seq, text in self._backlog.pop(symbol, ()):
            self.deliver_quote(symbol, held_seq, text)

    def _interval_ms(self, symbol: str) -> int:
        entry = self.throttle.entries.get(symbol)
        return round(entry.interval * 1000) if entry is not None else 0

    def _start(
        self,
        symbol: str,
        active: bool,
        missed: list[str] | None,
        latest: Latest,
        epoch: str,
        throttle_ms: int,
    ) -> None:
        """Hand on ``symbol``'s start: its missed quotes or a snapshot; then a halt's status."""
        newest, text = latest.get(symbol, (0, ""))
        if missed is not None:
            self.subs[symbol] = protocol.quote_seq(missed[0]) - 1 if missed else newest
            self.throttle.set(symbol, throttle_ms, wait=False)
            for quote in missed:
                self.deliver_quote(symbol, protocol.quote_seq(quote), quote)
            start = self.subs[symbol] or 0
        else:
            if active and text:
                self.outbox.control(protocol.snapshot_from_quote(text, epoch))
            start = newest if active and text else 0
            self.throttle.set(symbol, throttle_ms)
        if not active:
            self.deliver_status(symbol, protocol.status(symbol, State.HALTED))
        self._release(symbol, start)
