"""How much a Linux loopback TCP socket takes in for a peer that stopped reading.

    .venv/bin/python -m docs.stack.socket_buffers

A client connects over 127.0.0.1 with a 4 KiB receive buffer (as the stalled
clients of tests/faults/test_slow_client.py) and never reads. The server side
writes 230-byte "quotes" without blocking until the kernel refuses, waits for
the buffers to stop growing, and prints what the kernel accepted: once with
the kernel's send-buffer autotuning (``FEED_SOCKET_BUFFER_BYTES=0``), once with
``SO_SNDBUF`` set to 65536 as the feed does by default. Also prints
``net.ipv4.tcp_wmem``. docs/STACK.md quotes its output.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

QUOTE = b"q" * 230  # about one JSON quote message


def accepted_while_stalled(sndbuf: int) -> tuple[int, int]:
    """(bytes the kernel took before refusing for 0.5 s, SO_SNDBUF at the end)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        reader = socket.socket()
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.connect(listener.getsockname())
        writer, _ = listener.accept()
        with reader, writer:
            if sndbuf:
                writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            writer.setblocking(False)
            total, last_progress = 0, time.monotonic()
            while time.monotonic() - last_progress < 0.5:
                try:
                    total += writer.send(QUOTE)
                    last_progress = time.monotonic()
                except BlockingIOError:
                    time.sleep(0.01)
            return total, writer.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)


def main() -> None:
    wmem = Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()
    print(f"net.ipv4.tcp_wmem (min default max): {' '.join(wmem)}")
    for label, sndbuf in (("autotuning (SO_SNDBUF not set)", 0), ("SO_SNDBUF 65536", 65536)):
        total, final = accepted_while_stalled(sndbuf)
        print(f"{label:31}: {total:>9,} bytes taken (~{total // len(QUOTE):,} quotes of"
              f" {len(QUOTE)} B) for a reader that stopped; SO_SNDBUF now {final:,}")


if __name__ == "__main__":
    main()
