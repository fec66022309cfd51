"""The CLI: argument errors (exit 2), the table, and runs against a real daphne as a subprocess."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading

import pytest
from rich.console import Console

from marketfeed_client.cli import (
    Board,
    Ticks,
    decimals_of,
    instruments_url,
    parse_args,
    quote_line,
    render,
)
from marketfeed_client.messages import ConnectionState, Gap, StateChange, Status, quote_from
from tests.client.fakes import quote, snapshot
from tests.servers import ROOT
from tests.timeouts import timeout

WIRE_FIELDS = {
    "symbol",
    "seq",
    "bid",
    "ask",
    "bid_size",
    "ask_size",
    "last",
    "last_size",
    "volume",
    "ts",
}
DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([], "SYMBOL"),
        (["--token", "t", "--count", "0", "AAPL"], "--count: must be at least 1"),
        (["--token", "t", "--count", "many", "AAPL"], "not an integer"),
        (["--token", "t", "--count", "2", "--once", "AAPL"], "not allowed with"),
        (["--token", "t", "--url", "http://x/", "AAPL"], "not a WebSocket URL"),
        (["--token", "t", "--throttle-ms", "60001", "AAPL"], "at most 60000"),
        (["--token", "t", "--auth", "cookie", "AAPL"], "invalid choice"),
        (["--token", "t", " ", "AAPL"], "not a symbol"),
        (["AAPL"], "MARKETFEED_TOKEN"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(monkeypatch, capsys, argv, complaint):
    monkeypatch.delenv("MARKETFEED_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


def test_the_token_and_url_may_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MARKETFEED_TOKEN", "from-env")
    monkeypatch.setenv("MARKETFEED_URL", "wss://feed.example/ws/quotes/")
    args = parse_args(["aapl", "--once"])
    assert (args.token, args.url, args.symbols, args.count) == (
        "from-env", "wss://feed.example/ws/quotes/", ["AAPL"], 1
    )


def table_text(board: Board, now_us: int) -> str:
    console = Console(record=True, width=120, color_system=None, file=io.StringIO())
    console.print(render(board, now_us=now_us))
    return console.export_text()


def row_cells(text: str, symbol: str) -> list[str]:
    row = next(line for line in text.splitlines() if line.strip("│ ").startswith(symbol + " "))
    return [cell.strip() for cell in row.split("│")[1:-1]]


def test_the_table_shows_prices_change_seq_age_gaps_and_the_connection():
    board = Board(["AAPL", "MSFT"])
    board.apply(StateChange(ConnectionState.LIVE, "subscribed to 2 symbol(s)"))
    board.apply(quote_from(snapshot("AAPL", 10), "e1"))
    board.apply(Gap("AAPL", 10, 14, "conflated", "e1"))
    board.apply(quote_from(quote("AAPL", 14), "e1"))
    board.apply(Status("MSFT", "halted"))
    text = table_text(board, now_us=quote("AAPL", 14)["ts"] + 2_500_000)
    assert row_cells(text, "AAPL") == [
        "AAPL", "100.14", "100.16", "100.15", "+0.04", "14", "2.5s", "1",
    ]
    assert "MSFT (halted)" in text
    assert "live: subscribed to 2 symbol(s)" in text


def wire(symbol: str, seq: int, bid: float, ask: float, last: float, kind: str = "quote") -> dict:
    return {**quote(symbol, seq), "type": kind, "bid": bid, "ask": ask, "last": last}


def test_prices_show_to_each_instruments_tick_and_changes_as_signed_decimals():
    board = Board(["AAPL", "BTC-USD", "EUR/USD", "7203.T"])
    board.ticks.learn({"AAPL": "0.01", "BTC-USD": "0.01", "EUR/USD": "0.00001", "7203.T": "1"})
    for msg in (
        wire("AAPL", 1, 278.5, 278.52, 278.5, "snapshot"),
        wire("AAPL", 2, 278.59, 278.6, 278.6),  # 278.60 on the wire is the JSON number 278.6
        wire("BTC-USD", 1, 92007.99, 92008.01, 92008.0, "snapshot"),
        wire("BTC-USD", 2, 92000.0, 92000.02, 91990.0),
        wire("EUR/USD", 1, 1.1645, 1.16452, 1.16451, "snapshot"),
        wire("EUR/USD", 2, 1.16452, 1.16454, 1.16453),  # +0.00002: a float says 2e-05
        wire("7203.T", 1, 2890.0, 2891.0, 2890.0, "snapshot"),
    ):
        board.apply(quote_from(msg, "e1"))
    text = table_text(board, now_us=quote("AAPL", 2)["ts"])
    assert row_cells(text, "AAPL")[1:5] == ["278.59", "278.60", "278.60", "+0.10"]
    assert row_cells(text, "BTC-USD")[1:5] == ["92000.00", "92000.02", "91990.00", "-18.00"]
    assert row_cells(text, "EUR/USD")[1:5] == ["1.16452", "1.16454", "1.16453", "+0.00002"]
    assert row_cells(text, "7203.T")[1:5] == ["2890", "2891", "2890", "0"]
    assert "e-0" not in text


def test_without_the_instrument_list_prices_keep_the_most_decimals_seen():
    ticks = Ticks()
    for msg in (wire("AAPL", 1, 278.5, 278.52, 278.5), wire("AAPL", 2, 278.6, 278.61, 278.6)):
        ticks.observe(quote_from(msg, "e1"))
    assert ticks.price("AAPL", 278.6) == "278.60"
    assert ticks.change("AAPL", 2e-05 - 2e-05) == "0.00"
    assert ticks.change("AAPL", -0.1) == "-0.10"
    assert [decimals_of(t) for t in ("0.01", "0.00001", "2e-05", "1", "100", "0.25")] == [
        2, 5, 5, 0, 0, 2,
    ]


def test_quote_lines_show_prices_to_the_tick():
    ticks = Ticks()
    ticks.learn({"BTC-USD": "0.01"})
    line = quote_line(quote_from(wire("BTC-USD", 3, 92008.0, 92008.01, 92008.0), "e1"), ticks)
    assert "bid=92008.00 ask=92008.01 last=92008.00" in line


@pytest.mark.parametrize(
    ("ws_url", "api_url"),
    [
        ("ws://127.0.0.1:8000/ws/quotes/", "http://127.0.0.1:8000/api/instruments/?page_size=1000"),
        ("wss://feed.example/md/ws/quotes/", "https://feed.example/md/api/instruments/?page_size=1000"),
        ("ws://feed.example/stream", "http://feed.example/api/instruments/?page_size=1000"),
    ],
)
def test_the_instrument_list_is_read_beside_the_stream(ws_url, api_url):
    assert instruments_url(ws_url) == api_url


# --- against a real server ------------------------------------------------------------------

pytest_live = pytest.mark.live


def cli(server, *args: str, token: str | None = None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "MARKETFEED_TOKEN"}
    if token is not None:
        env["MARKETFEED_TOKEN"] = token
    return [sys.executable, "-m", "marketfeed_client", "--url", server.ws_url, *args], env


@pytest_live
def test_count_5_json_prints_5_valid_quote_lines_and_exits_0(server, token):
    command, env = cli(server, "--count", "5", "--json", "AAPL", "MSFT", token=token)
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout(60)
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    for line in map(json.loads, lines):
        assert WIRE_FIELDS | {"epoch", "snapshot", "prev_seq"} == line.keys()
        assert line["symbol"] in ("AAPL", "MSFT")
        assert line["bid"] < line["ask"]
        assert isinstance(line["seq"], int)
        assert line["seq"] >= 1
        assert line["epoch"]


@pytest_live
def test_quote_lines_show_each_instruments_tick_decimals(server, token):
    # BTC-USD ticks in 0.01 around 92,000 and EUR/USD in 0.00001: as JSON numbers
    # their trailing zeros are gone, and the CLI puts them back from /api/instruments/.
    command, env = cli(server, "--count", "12", "BTC-USD", "EUR/USD", token=token)
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout(60)
    )
    assert result.returncode == 0, result.stderr
    places = {"BTC-USD": 2, "EUR/USD": 5}
    lines = result.stdout.splitlines()
    assert len(lines) == 12
    for line in lines:
        symbol = line.split()[0]
        prices = dict(re.findall(r"\b(bid|ask|last)=(\S+)", line))
        assert prices.keys() == {"bid", "ask", "last"}, line
        for text in prices.values():
            assert DECIMAL.match(text), line
            assert len(text.partition(".")[2]) == places[symbol], line


@pytest_live
def test_an_unknown_symbol_exits_1_with_the_servers_message(server, token):
    command, env = cli(server, "--token", token, "--once", "AAPL", "NOPE")
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout(60)
    )
    assert result.returncode == 1
    assert "unknown_symbol: unknown symbol(s): NOPE" in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


@pytest_live
def test_a_bad_token_exits_1_saying_so(server):
    command, env = cli(server, "--once", "AAPL", token="wrong")
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout(60)
    )
    assert result.returncode == 1
    assert "refused the token" in result.stderr


@pytest_live
@pytest.mark.parametrize("mode", [["--json"], []], ids=["json-lines", "table"])
def test_ctrl_c_exits_0_without_a_traceback(server, token, mode):
    command, env = cli(server, *mode, "AAPL", token=token)
    env["TTY_COMPATIBLE"] = "1"  # rich draws its live table into the pipe as into a terminal
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        streaming = threading.Event()

        def watch() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "AAPL" in line and any(ch.isdigit() for ch in line):
                    streaming.set()

        threading.Thread(target=watch, daemon=True).start()
        assert streaming.wait(timeout(30)), "no quote shown"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout(20)) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_the_client_package_imports_neither_django_nor_channels():
    code = (
        "import sys, marketfeed_client, marketfeed_client.cli; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('django', 'channels', 'feeds')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(30),
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
