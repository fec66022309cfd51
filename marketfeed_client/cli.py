"""``python -m marketfeed_client``: a live quote table in the terminal, or quote lines for scripts.

Exit status: 0 when done (``--count`` reached, or Ctrl-C), 1 when the server
refuses (bad token, unknown symbol), 2 for bad arguments (argparse). In the
line modes stdout carries only quotes; gaps and connection changes go to
stderr, so a script can pipe the quotes on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from marketfeed_client.client import AUTH_WAYS, WIRE_FORMATS, FeedClient
from marketfeed_client.messages import FeedError, Gap, Quote, StateChange, Status

DEFAULT_URL = "ws://127.0.0.1:8000/ws/quotes/"
TOKEN_ENV = "MARKETFEED_TOKEN"
URL_ENV = "MARKETFEED_URL"
MAX_THROTTLE_MS = 60_000  # PROTOCOL.md: throttle_ms is 0..60000
TABLE_REFRESH_PER_S = 4  # a person reads no faster; the data is kept current between refreshes


def _ws_url(text: str) -> str:
    if urlsplit(text).scheme not in ("ws", "wss") or not urlsplit(text).netloc:
        raise argparse.ArgumentTypeError(f"not a WebSocket URL (ws://HOST/... or wss://...): {text!r}")
    return text


def _bounded_int(low: int, high: int | None) -> type[int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            upper = "" if high is None else f" and at most {high}"
            raise argparse.ArgumentTypeError(f"must be at least {low}{upper}: {value}")
        return value

    return parse  # type: ignore[return-value]


def _symbol(text: str) -> str:
    symbol = text.strip().upper()
    if not symbol or any(c.isspace() for c in symbol):
        raise argparse.ArgumentTypeError(f"not a symbol: {text!r}")
    return symbol


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m marketfeed_client",
        description="Stream live quotes from a marketfeed server.",
        epilog=f"The token may come from ${TOKEN_ENV} instead of --token (keeps it out of "
        f"shell history); the URL from ${URL_ENV}. Ctrl-C exits.",
    )
    parser.add_argument("symbols", nargs="+", type=_symbol, metavar="SYMBOL",
                        help='instrument symbols, or "*" for every one you may see')
    parser.add_argument("--url", type=_ws_url, default=os.environ.get(URL_ENV, DEFAULT_URL),
                        help=f"the quote stream (default: ${URL_ENV} or {DEFAULT_URL})")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                        help=f"API token (default: ${TOKEN_ENV})")
    parser.add_argument("--auth", choices=AUTH_WAYS, default="header",
                        help="how to present the token (default: header)")
    parser.add_argument("--format", choices=WIRE_FORMATS, default="json", dest="wire_format",
                        help="wire format of the server's frames (default: json)")
    parser.add_argument("--throttle-ms", type=_bounded_int(0, MAX_THROTTLE_MS), default=None,
                        help="at most one quote per symbol per this many ms")
    count = parser.add_mutually_exclusive_group()
    count.add_argument("--count", type=_bounded_int(1, None), metavar="N",
                       help="print N quotes as lines, then exit")
    count.add_argument("--once", action="store_const", const=1, dest="count",
                       help="print one quote, then exit (--count 1)")
    parser.add_argument("--json", action="store_true",
                        help="print quotes as JSON lines instead of a table")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.token:
        parser.error(f"a token is required: --token TOKEN, or set ${TOKEN_ENV}")
    return args


# --- line output ----------------------------------------------------------------------------


def quote_line(quote: Quote) -> str:
    """The plain one-line form of a quote."""
    kind = "snapshot" if quote.snapshot else "quote"
    return (
        f"{quote.symbol} {kind} seq={quote.seq} bid={quote.bid:g} ask={quote.ask:g} "
        f"last={quote.last:g} volume={quote.volume} time={quote.time.isoformat()}"
    )


def gap_line(gap: Gap) -> str:
    missed = "" if gap.missed is None else f", {gap.missed} missed"
    return f"gap {gap.symbol}: seq {gap.after_seq} -> {gap.next_seq} ({gap.reason}{missed})"


async def print_lines(feed: FeedClient, count: int | None, as_json: bool) -> None:
    """Quotes to stdout (``count`` of them, or forever), the rest to stderr."""
    printed = 0
    async for event in feed.events():
        if isinstance(event, Quote):
            print(event.to_json() if as_json else quote_line(event), flush=True)
            printed += 1
            if count is not None and printed >= count:
                return
        elif isinstance(event, Gap):
            print(gap_line(event), file=sys.stderr, flush=True)
        elif isinstance(event, Status):
            print(f"status {event.symbol}: {event.state}", file=sys.stderr, flush=True)
        elif isinstance(event, StateChange):
            print(f"connection: {event.state.value} {event.detail}", file=sys.stderr, flush=True)


# --- the live table -------------------------------------------------------------------------


@dataclass
class Row:
    quote: Quote
    first_last: float  # the first trade price seen this session: "change" is against it
    gaps: int = 0


@dataclass
class Board:
    """What the table shows: the newest quote, change and gap count per symbol."""

    symbols: list[str]
    rows: dict[str, Row] = field(default_factory=dict)
    connection: str = "connecting"
    statuses: dict[str, str] = field(default_factory=dict)

    def apply(self, event: Quote | Gap | Status | StateChange) -> None:
        if isinstance(event, Quote):
            row = self.rows.get(event.symbol)
            if row is None:
                self.rows[event.symbol] = Row(event, event.last)
            else:
                row.quote = event
        elif isinstance(event, Gap) and event.symbol in self.rows:
            self.rows[event.symbol].gaps += 1
        elif isinstance(event, Status):
            self.statuses[event.symbol] = event.state
        elif isinstance(event, StateChange):
            self.connection = f"{event.state.value}: {event.detail}" if event.detail else event.state.value


def render(board: Board, now_us: int) -> object:
    """The table of ``board`` as of ``now_us`` (a rich renderable)."""
    from rich.table import Table

    table = Table(title="marketfeed", caption=board.connection, caption_justify="left")
    for name in ("symbol", "bid", "ask", "last", "change", "seq", "age", "gaps"):
        table.add_column(name, justify="left" if name == "symbol" else "right")
    names = sorted(board.rows) if "*" in board.symbols else board.symbols
    for symbol in names:
        row = board.rows.get(symbol)
        state = board.statuses.get(symbol, "")
        label = f"{symbol} ({state})" if state and state != "trading" else symbol
        if row is None:
            table.add_row(label, "-", "-", "-", "-", "-", "-", "-")
            continue
        q, change = row.quote, row.quote.last - row.first_last
        colour = "green" if change > 0 else "red" if change < 0 else ""
        table.add_row(
            label, f"{q.bid:g}", f"{q.ask:g}", f"{q.last:g}",
            f"[{colour}]{change:+.6g}[/]" if colour else f"{change:+.6g}",
            str(q.seq), f"{max(0, now_us - q.ts) / 1e6:.1f}s", str(row.gaps),
        )
    return table


async def show_table(feed: FeedClient, board: Board) -> None:
    from rich.live import Live

    def now_us() -> int:
        return time.time_ns() // 1000

    with Live(render(board, now_us()), refresh_per_second=TABLE_REFRESH_PER_S) as live:
        async for event in feed.events():
            board.apply(event)
            live.update(render(board, now_us()))


# --- main -----------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    feed = FeedClient(
        args.url, args.symbols, token=args.token, auth=args.auth, wire_format=args.wire_format,
        throttle_ms=args.throttle_ms,
    )
    async with feed:
        if args.count is not None or args.json:
            await print_lines(feed, args.count, args.json)
        else:
            await show_table(feed, Board(list(args.symbols)))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how a person stops a live table
    except FeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
