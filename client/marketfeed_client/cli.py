"""``python -m marketfeed_client``: a live quote table in the terminal, or quote lines for scripts.

Exit status: 0 when done (``--count`` reached, or Ctrl-C), 1 when the server
refuses (bad token, unknown symbol), 2 for bad arguments (argparse), or for
the table without its ``cli`` extra (rich). In the line modes stdout carries
only quotes; gaps and connection changes go to stderr, so a script can pipe
the quotes on.

Prices are shown to each instrument's tick size, as a trader reads them
(``278.60``, ``92008.00``, ``1.08452``): the tick sizes come from the REST
instrument list next to the stream (``/api/instruments/``). Where that cannot
be read, a symbol's prices get the most decimals seen in its quotes so far.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit, urlunsplit

from marketfeed_client.client import AUTH_WAYS, WIRE_FORMATS, FeedClient
from marketfeed_client.messages import FeedError, Gap, Quote, StateChange, Status

DEFAULT_URL = "ws://127.0.0.1:8000/ws/quotes/"
TOKEN_ENV = "MARKETFEED_TOKEN"
URL_ENV = "MARKETFEED_URL"
MAX_THROTTLE_MS = 60_000  # PROTOCOL.md: throttle_ms is 0..60000
TABLE_REFRESH_PER_S = 4  # a person reads no faster; the data is kept current between refreshes
TICKS_TIMEOUT_S = 5.0  # the instrument list is worth one short wait, not more
MAX_DECIMALS = 10  # beyond this a price's digits are noise, not a tick grid
CLI_EXTRA_MISSING = (
    "the live table needs the 'cli' extra (rich): pip install 'marketfeed-client[cli]'; "
    "--json or --count N print quotes as lines without it"
)

logger = logging.getLogger(__name__)


def _ws_url(text: str) -> str:
    if urlsplit(text).scheme not in ("ws", "wss") or not urlsplit(text).netloc:
        raise argparse.ArgumentTypeError(
            f"not a WebSocket URL (ws://HOST/... or wss://...): {text!r}"
        )
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
        f"shell history); the URL from ${URL_ENV}. Ctrl-C exits. The live table needs the "
        f"'cli' extra (pip install 'marketfeed-client[cli]'); --json and --count do not.",
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


# --- prices to the tick ----------------------------------------------------------------------


def decimals_of(number: str) -> int:
    """Decimal places written in ``number``: ``"0.01"`` -> 2, ``"2e-05"`` -> 5, ``"100"`` -> 0."""
    try:
        exponent = Decimal(number).normalize().as_tuple().exponent
    except InvalidOperation:
        return 0
    return min(MAX_DECIMALS, max(0, -exponent)) if isinstance(exponent, int) else 0


def float_decimals(value: float) -> int:
    """The fewest decimal places that write ``value`` (``100.16000000000001`` -> 2)."""
    tolerance = 1e-9 * max(1.0, abs(value))
    for places in range(MAX_DECIMALS):
        if abs(value - round(value, places)) <= tolerance:
            return places
    return MAX_DECIMALS


@dataclass
class Ticks:
    """How many decimals each symbol's prices have.

    The tick size's, once known (``learn``); until then, or for a symbol the
    instrument list did not name, the most decimals seen in its prices so far
    (``observe``): the wire sends JSON numbers, so ``278.60`` arrives as ``278.6``.
    """

    known: dict[str, int] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)

    def learn(self, tick_sizes: dict[str, str]) -> None:
        for symbol, tick_size in tick_sizes.items():
            self.known[symbol] = decimals_of(tick_size)

    def observe(self, quote: Quote) -> None:
        places = max(float_decimals(p) for p in (quote.bid, quote.ask, quote.last))
        if places > self.seen.get(quote.symbol, 0):
            self.seen[quote.symbol] = places

    def decimals(self, symbol: str) -> int:
        known = self.known.get(symbol)
        return known if known is not None else self.seen.get(symbol, 0)

    def price(self, symbol: str, value: float) -> str:
        """``value`` to the tick: ``278.60``, ``92008.00``."""
        return f"{value:.{self.decimals(symbol)}f}"

    def change(self, symbol: str, value: float) -> str:
        """A signed difference to the tick: ``+0.04``, ``-0.00002``; ``0.00`` when unchanged."""
        places = self.decimals(symbol)
        if round(value, places) == 0:
            return f"{0:.{places}f}"
        return f"{value:+.{places}f}"


def instruments_url(ws_url: str) -> str:
    """The REST instrument list beside a quote stream: ``wss://h/x/ws/quotes/`` -> ``https://h/x/api/instruments/``."""
    parts = urlsplit(ws_url)
    base = parts.path[: -len("ws/quotes/")] if parts.path.endswith("ws/quotes/") else "/"
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, base + "api/instruments/", "page_size=1000", ""))


def fetch_tick_sizes(ws_url: str, token: str, timeout_s: float = TICKS_TIMEOUT_S) -> dict[str, str]:
    """``{symbol: tick_size}`` of every instrument the token may see (blocking; all pages)."""
    tick_sizes: dict[str, str] = {}
    url: str | None = instruments_url(ws_url)
    for _ in range(100):  # pages of 1,000: far more than any feed lists
        if not url:
            break
        request = urllib.request.Request(
            url, headers={"Authorization": f"Token {token}", "Accept": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            page = json.load(response)
        for item in page.get("results", []):
            tick_sizes[str(item["symbol"])] = str(item["tick_size"])
        url = page.get("next")
    return tick_sizes


async def learn_ticks(ticks: Ticks, ws_url: str, token: str) -> None:
    """Fill ``ticks`` from the instrument list; on any failure keep the decimals seen."""
    try:
        ticks.learn(await asyncio.to_thread(fetch_tick_sizes, ws_url, token))
    except Exception as exc:  # a nicety: prices still show, to the digits seen
        logger.debug("no tick sizes from %s: %s", instruments_url(ws_url), exc)


# --- line output ----------------------------------------------------------------------------


def quote_line(quote: Quote, ticks: Ticks | None = None) -> str:
    """The plain one-line form of a quote, prices to the tick."""
    if ticks is None:
        ticks = Ticks()
        ticks.observe(quote)
    kind = "snapshot" if quote.snapshot else "quote"
    price = ticks.price
    return (
        f"{quote.symbol} {kind} seq={quote.seq} bid={price(quote.symbol, quote.bid)} "
        f"ask={price(quote.symbol, quote.ask)} last={price(quote.symbol, quote.last)} "
        f"volume={quote.volume} time={quote.time.isoformat()}"
    )


def gap_line(gap: Gap) -> str:
    missed = "" if gap.missed is None else f", {gap.missed} missed"
    return f"gap {gap.symbol}: seq {gap.after_seq} -> {gap.next_seq} ({gap.reason}{missed})"


async def print_lines(
    feed: FeedClient, count: int | None, as_json: bool, ticks: Ticks | None = None
) -> None:
    """Quotes to stdout (``count`` of them, or forever), the rest to stderr."""
    ticks = ticks or Ticks()
    printed = 0
    async for event in feed.events():
        if isinstance(event, Quote):
            ticks.observe(event)
            print(event.to_json() if as_json else quote_line(event, ticks), flush=True)
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
    ticks: Ticks = field(default_factory=Ticks)

    def apply(self, event: Quote | Gap | Status | StateChange) -> None:
        if isinstance(event, Quote):
            self.ticks.observe(event)
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
            state = event.state.value
            self.connection = f"{state}: {event.detail}" if event.detail else state


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
        q, price = row.quote, board.ticks.price
        change = board.ticks.change(symbol, q.last - row.first_last)
        colour = "green" if change.startswith("+") else "red" if change.startswith("-") else ""
        table.add_row(
            label, price(symbol, q.bid), price(symbol, q.ask), price(symbol, q.last),
            f"[{colour}]{change}[/]" if colour else change,
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


def table_wanted(args: argparse.Namespace) -> bool:
    return args.count is None and not args.json


async def run(args: argparse.Namespace) -> None:
    feed = FeedClient(
        args.url, args.symbols, token=args.token, auth=args.auth, wire_format=args.wire_format,
        throttle_ms=args.throttle_ms,
    )
    ticks = Ticks()
    # Read beside the connection's handshake: the first quotes wait for it at most one timeout.
    learning = None if args.json else asyncio.create_task(learn_ticks(ticks, args.url, args.token))
    async with feed:
        if not table_wanted(args):
            if learning is not None:
                await learning  # every line printed to the same tick
            await print_lines(feed, args.count, args.json, ticks)
        else:
            # The table sharpens to the tick when the list arrives.
            await show_table(feed, Board(list(args.symbols), ticks=ticks))
    if learning is not None and not learning.done():
        learning.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if table_wanted(args) and importlib.util.find_spec("rich") is None:
        print(f"error: {CLI_EXTRA_MISSING}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how a person stops a live table
    except FeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
