"""The CLI: argument errors (exit 2), the table, and runs against a real daphne as a subprocess."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading

import pytest
from rich.console import Console

from marketfeed_client.cli import Board, parse_args, render
from marketfeed_client.messages import ConnectionState, Gap, StateChange, Status, quote_from
from tests.client.fakes import quote, snapshot
from tests.servers import ROOT
from tests.timeouts import timeout

WIRE_FIELDS = {"symbol", "seq", "bid", "ask", "bid_size", "ask_size", "last", "last_size", "volume", "ts"}


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


def test_the_table_shows_prices_change_seq_age_gaps_and_the_connection():
    board = Board(["AAPL", "MSFT"])
    board.apply(StateChange(ConnectionState.LIVE, "subscribed to 2 symbol(s)"))
    board.apply(quote_from(snapshot("AAPL", 10), "e1"))
    board.apply(Gap("AAPL", 10, 14, "conflated", "e1"))
    board.apply(quote_from(quote("AAPL", 14), "e1"))
    board.apply(Status("MSFT", "halted"))
    console = Console(record=True, width=120, color_system=None, file=io.StringIO())
    console.print(render(board, now_us=quote("AAPL", 14)["ts"] + 2_500_000))
    text = console.export_text()
    row = next(line for line in text.splitlines() if "AAPL" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells == ["AAPL", "100.14", "100.16", "100.15", "+0.04", "14", "2.5s", "1"]
    assert "MSFT (halted)" in text
    assert "live: subscribed to 2 symbol(s)" in text


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
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout(60))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    for line in map(json.loads, lines):
        assert WIRE_FIELDS | {"epoch", "snapshot", "prev_seq"} == line.keys()
        assert line["symbol"] in ("AAPL", "MSFT") and line["bid"] < line["ask"]
        assert isinstance(line["seq"], int) and line["seq"] >= 1 and line["epoch"]


@pytest_live
def test_an_unknown_symbol_exits_1_with_the_servers_message(server, token):
    command, env = cli(server, "--token", token, "--once", "AAPL", "NOPE")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout(60))
    assert result.returncode == 1
    assert "unknown_symbol: unknown symbol(s): NOPE" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


@pytest_live
def test_a_bad_token_exits_1_saying_so(server):
    command, env = cli(server, "--once", "AAPL", token="wrong")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout(60))
    assert result.returncode == 1 and "refused the token" in result.stderr


@pytest_live
@pytest.mark.parametrize("mode", [["--json"], []], ids=["json-lines", "table"])
def test_ctrl_c_exits_0_without_a_traceback(server, token, mode):
    command, env = cli(server, *mode, "AAPL", token=token)
    env["TTY_COMPATIBLE"] = "1"  # rich draws its live table into the pipe as into a terminal
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_the_client_package_imports_neither_django_nor_channels():
    code = "import sys, marketfeed_client, marketfeed_client.cli; " \
           "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'channels', 'feeds')))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout(30), env={k: v for k, v in os.environ.items()
                                                      if k != "DJANGO_SETTINGS_MODULE"})
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
