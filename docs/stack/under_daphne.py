"""What plain daphne does with close codes, request heads and compression offers.

    .venv/bin/python -m docs.stack.under_daphne

Starts ``python -m daphne`` on a free loopback port with the tiny ASGI
application below (no Django, no marketfeed code), then, as a client:

1. opens WebSockets that the application closes with 1000, 1001, 1009 and
   4401 through plain ASGI (``websocket.close``), and prints the close code
   each client actually received;
2. sends HTTP request heads of 16,000 and 17,000 bytes and prints the status
   line of each answer, and whether the application saw the request;
3. offers permessage-deflate (as every browser does) and prints the
   ``Sec-WebSocket-Extensions`` daphne answers with;
4. asks the application, on an accepted WebSocket, which object is its TCP
   transport's registered producer (daphne's ``send`` is a
   ``functools.partial`` of its server's ``handle_reply`` with the protocol).

docs/STACK.md quotes its output.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets

ROOT = Path(__file__).resolve().parents[2]
SEEN = Path(tempfile.gettempdir()) / "under_daphne_seen.txt"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """HTTP: 200 "ok", noting the path; WebSocket: accept, then close with the path's code."""
    if scope["type"] == "http":
        with SEEN.open("a") as seen:
            seen.write(scope["path"] + "\n")
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        if scope["path"] == "/producer/":
            producer = send.args[0].transport.producer
            name = f"{type(producer).__module__}.{type(producer).__qualname__}"
            await send({"type": "websocket.send", "text": name})
            return
        await send({"type": "websocket.close", "code": int(scope["path"].strip("/"))})
        while (await receive())["type"] != "websocket.disconnect":
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("daphne did not start listening")


async def close_code(port: int, code: int) -> int | None:
    async with websockets.connect(f"ws://127.0.0.1:{port}/{code}/", compression=None) as ws:
        try:
            async for _ in ws:
                pass
        except websockets.ConnectionClosed:
            pass
        return ws.close_code


def head_status(port: int, head_bytes: int, *, split: int) -> str:
    """The answer to a GET head of ``head_bytes``: one long line, or ``split`` headers."""
    path = f"/head-{head_bytes}-{split}/"
    if split == 0:  # one long request line, like a long ?symbols= list
        start, end = f"GET {path}?symbols=", " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        request = start + "A" * (head_bytes - len(start) - len(end)) + end
    else:  # lines of under 2 KiB each
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        each = (head_bytes - len(request) - 2) // split
        for i in range(split):
            name = f"X-Pad-{i:02d}: "
            length = each if i < split - 1 else head_bytes - len(request) - 2
            request += name + "a" * (length - len(name) - 2) + "\r\n"
        request += "\r\n"
    data = request.encode()
    assert len(data) == head_bytes, len(data)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        try:
            answer = s.recv(4096).decode("latin-1")
        except ConnectionResetError:
            answer = ""
    return answer.split("\r\n", 1)[0] or "connection closed, no answer"


async def offered_deflate(port: int) -> str | None:
    async with websockets.connect(f"ws://127.0.0.1:{port}/1000/", compression="deflate") as ws:
        return ws.response.headers.get("Sec-WebSocket-Extensions")


async def producer_of_upgraded(port: int) -> str:
    async with websockets.connect(f"ws://127.0.0.1:{port}/producer/") as ws:
        return str(await ws.recv())


def main() -> None:
    port = free_port()
    SEEN.unlink(missing_ok=True)
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
             "docs.stack.under_daphne:app"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
        )
        try:
            wait_listening(port)
            print(f"daphne on 127.0.0.1:{port}, a plain ASGI application\n")
            print("1. websocket.close with code -> close code the client received")
            for code in (1000, 1001, 1009, 4401):
                print(f"   {code} -> {asyncio.run(close_code(port, code))}")
            print("\n2. request head -> answer (did the application see the request?)")
            for size, split, what in (
                (16_000, 0, "one long request line"),
                (17_000, 0, "one long request line"),
                (17_000, 10, "in lines of 1.7 KB"),
            ):
                status = head_status(port, size, split=split)
                time.sleep(0.2)
                seen = SEEN.exists() and f"/head-{size}-{split}/" in SEEN.read_text()
                print(f"   {size:,} bytes, {what} -> {status} ({'yes' if seen else 'no'})")
            print("\n3. client offers permessage-deflate -> Sec-WebSocket-Extensions in the answer")
            print(f"   {asyncio.run(offered_deflate(port))!r}")
            print("\n4. producer registered on an upgraded WebSocket's transport")
            print(f"   {asyncio.run(producer_of_upgraded(port))}")
        finally:
            proc.terminate()
            proc.wait(10)
            log.seek(0)
            marker = "Exception inside application"
            errors = [line.split("ERROR", 1)[-1].strip() for line in log if marker in line]
            print("\ndaphne's log, errors:")
            for line in errors:
                print(f"   {line}")
            SEEN.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
