"""``python -m bench formats``: JSON, MessagePack and permessage-deflate side by side in one run.

Every variant runs on the same deployment (the embedded daphne), at the same
offered load and subscriber count, one after the other: the server is
restarted with ``FEED_WS_COMPRESSION`` set for the variant, and the clients
connect with its ``?format=`` and, for a deflate variant, offer
permessage-deflate as every browser does. Figures per variant: server CPU per
delivery (from /proc, as in every scenario) and bytes on the wire per
delivery, counted in the client at the socket (frame headers included, TCP/IP
headers not), with both as ratios to plain JSON from the same run.

The clients are websockets' Sans-I/O ``ClientProtocol`` on an asyncio
protocol that counts the bytes it is handed: websockets does the framing,
the inflating and the pings; each message is decoded (``json.loads`` or
``msgpack.unpackb``) to count the quotes in it, so a variant that sent
garbage would count nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import multiprocessing as mp
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import msgpack
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from bench import procs
from bench.loadgen import assign_symbols
from bench.point import cpu_figures, sample_all
from bench.results import say
from bench.servers import FeedDeployment, Load

# name -> (?format=, FEED_WS_COMPRESSION); the client offers deflate unless "off".
VARIANTS: dict[str, tuple[str, str]] = {
    "json": ("json", "off"),
    "msgpack": ("msgpack", "off"),
    "json+deflate": ("json", "shared"),
    "msgpack+deflate": ("msgpack", "shared"),
    "json+deflate-context": ("json", "context"),
}
READY_TIMEOUT_S = 120.0
RESULT_GRACE_S = 30.0
SETTLE_S = 0.3  # frames read just after the window closes are still counted by then
RATIO_KEYS = ("server_cpu_per_delivery_us", "bytes_per_delivery")


# --- the client side (one spawned process) ----------------------------------------------


@dataclass(slots=True)
class Counts:
    start_ns: int = 2**62
    end_ns: int = 2**62
    wire_bytes: int = 0
    frames: int = 0
    quotes: int = 0
    subscribed: int = 0
    errors: int = 0
    # Set once every client of the process has its subscription confirmed.
    expected: int = 0
    all_subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    def counting(self) -> bool:
        return self.start_ns <= time.time_ns() < self.end_ns

    def on_message(self, data: bytes, binary: bool) -> None:
        decoded = msgpack.unpackb(data) if binary else json.loads(data)
        counting = self.counting()
        self.frames += counting
        for msg in decoded if isinstance(decoded, list) else (decoded,):
            kind = msg.get("type")
            if kind == "quote":
                self.quotes += counting
            elif kind == "subscribed":
                self.subscribed += 1
                if self.subscribed >= self.expected:
                    self.all_subscribed.set()
            elif kind == "error":
                self.errors += 1


class CountingConnection(asyncio.Protocol):
    """One client: subscribes once open, then decodes and counts every data frame."""

    def __init__(self, url: str, symbols: list[str], deflate: bool, counts: Counts) -> None:
        offer = [ClientPerMessageDeflateFactory(client_max_window_bits=True)] if deflate else None
        self.proto = ClientProtocol(parse_uri(url), extensions=offer, max_size=None)
        self.request = json.dumps({"op": "subscribe", "symbols": symbols, "id": 1}).encode()
        self.counts = counts
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.proto.send_request(self.proto.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        counts = self.counts
        if counts.counting():
            counts.wire_bytes += len(data)
        self.proto.receive_data(data)
        for event in self.proto.events_received():
            if isinstance(event, Response):
                self.proto.send_text(self.request)
            elif isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.BINARY):
                counts.on_message(event.data, event.opcode is Opcode.BINARY)
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        for data in self.proto.data_to_send():
            if data:
                self.transport.write(data)
        if self.proto.close_expected():
            self.transport.close()


async def _client_main(
    clients: list[tuple[str, list[str]]], deflate: bool, pipe: Connection
) -> None:
    loop = asyncio.get_running_loop()
    counts = Counts(expected=len(clients))
    transports = []
    for url, symbols in clients:
        uri = parse_uri(url)
        factory = functools.partial(CountingConnection, url, symbols, deflate, counts)
        transport, _ = await loop.create_connection(factory, uri.host, uri.port)
        transports.append(transport)
    await asyncio.wait_for(counts.all_subscribed.wait(), READY_TIMEOUT_S)
    pipe.send(("ready", counts.errors))
    _, start_ns, end_ns = await loop.run_in_executor(None, pipe.recv)
    counts.start_ns, counts.end_ns = start_ns, end_ns
    cpu0 = time.process_time()
    await asyncio.sleep(max(0.0, (end_ns - time.time_ns()) / 1e9) + SETTLE_S)
    pipe.send(("result", {
        "wire_bytes": counts.wire_bytes, "frames": counts.frames, "quotes": counts.quotes,
        "errors": counts.errors, "client_cpu_s": time.process_time() - cpu0,
    }))
    for transport in transports:
        transport.abort()


def client_process(
    clients: list[tuple[str, list[str]]], deflate: bool, pin: bool, pipe: Connection
) -> None:
    """Entry point of a spawned client process."""
    procs.raise_nofile()
    if pin:
        procs.pin_self(procs.CLIENT_CORE)
    asyncio.run(_client_main(clients, deflate, pipe))


# --- the bench side ------------------------------------------------------------------------


def measure_variant(
    dep: FeedDeployment, args: argparse.Namespace, name: str, load: Load
) -> dict[str, Any]:
    """Restart the server for variant ``name``, run the clients through one window, count."""
    fmt, compression = VARIANTS[name]
    dep.env["FEED_WS_COMPRESSION"] = compression
    dep.up(load)
    workers: list[tuple[Connection, Any]] = []
    try:
        subs = assign_symbols(dep.symbols, args.clients, args.per_client)
        clients = [(f"{dep.urls[0]}&format={fmt}", s) for s in subs]
        ctx = mp.get_context("spawn")
        for i in range(args.procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=client_process,
                args=(clients[i :: args.procs], compression != "off", args.pin, child),
                daemon=True,
            )
            proc.start()
            workers.append((parent, proc))
        for parent, _ in workers:
            _expect(parent, "ready", READY_TIMEOUT_S)
        start = time.time() + args.warmup
        end = start + args.duration
        for parent, _ in workers:
            parent.send(("window", int(start * 1e9), int(end * 1e9)))
        pids = dep.pids()
        time.sleep(max(0.0, start - time.time()))
        before = sample_all(pids)
        time.sleep(max(0.0, end - time.time()))
        after = sample_all(pids)
        seen = [_expect(parent, "result", args.duration + RESULT_GRACE_S) for parent, _ in workers]
    finally:
        for _, proc in workers:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        dep.down()
    return figures(name, args, seen, cpu_figures(before, after, args.duration))


def _expect(pipe: Connection, kind: str, timeout_s: float) -> Any:
    if not pipe.poll(timeout_s):
        raise RuntimeError(f"formats: no {kind!r} from a client process within {timeout_s:g} s")
    msg = pipe.recv()
    if msg[0] != kind:
        raise RuntimeError(f"formats: expected {kind!r}, got {msg[0]!r}")
    return msg[1]


def figures(
    name: str, args: argparse.Namespace, seen: list[dict[str, Any]], cpu: dict[str, Any]
) -> dict[str, Any]:
    quotes = sum(s["quotes"] for s in seen)
    wire = sum(s["wire_bytes"] for s in seen)
    point = {
        "variant": name,
        "format": VARIANTS[name][0],
        "compression": VARIANTS[name][1],
        "offered": args.offered,
        "deliveries": quotes,
        "delivered_per_s": round(quotes / args.duration, 1),
        "frames": sum(s["frames"] for s in seen),
        "errors": sum(s["errors"] for s in seen),
        "wire_bytes": wire,
        "bytes_per_delivery": round(wire / quotes, 1) if quotes else None,
        "server_cpu_per_delivery_us": (
            round(cpu["server_cpu_s"] * 1e6 / quotes, 2) if quotes else None
        ),
        "client_cpu_s": round(sum(s["client_cpu_s"] for s in seen), 3),
        **cpu,
    }
    say(
        f"  {name:>21}: delivered {point['delivered_per_s']:>9,.0f}/s  "
        f"cpu/delivery {point['server_cpu_per_delivery_us']} µs  "
        f"{point['bytes_per_delivery']} B/delivery  server {cpu['server_cores']:.2f} cores"
    )
    return point


def with_ratios(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Each variant's CPU and bytes per delivery as a ratio to JSON's in the same run."""
    base = next((p for p in points if p["variant"] == "json"), None)
    summary = {}
    for p in points:
        row = {k: p[k] for k in (*RATIO_KEYS, "delivered_per_s")}
        if base is not None:
            for key in RATIO_KEYS:
                row[f"{key}_ratio"] = (
                    round(p[key] / base[key], 3) if p[key] and base[key] else None
                )
        summary[p["variant"]] = row
    return summary


def run(args: argparse.Namespace) -> dict[str, Any]:
    rate = args.offered / (args.clients * args.per_client)
    load = Load(symbols=args.symbols, rate=rate, batch=args.batch)
    say(
        f"formats: {args.clients} clients x {args.per_client} of {args.symbols} symbols, "
        f"{args.offered:,.0f} deliveries/s offered ({rate:g} quotes/s per symbol), "
        f"batch frames {'on' if args.batch else 'off'}"
    )
    dep = FeedDeployment("embedded", pin=args.pin)
    try:
        points = [measure_variant(dep, args, name, load) for name in args.variants]
    finally:
        dep.close()
    return {"points": points, "summary": with_ratios(points)}


def variant_list(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in names if v not in VARIANTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown variant(s) {bad}; choose from {', '.join(VARIANTS)}"
        )
    return names


def add_parser(sub: Any, positive: Any) -> None:
    """The ``formats`` sub-command's options (bench/cli.py registers it)."""
    p = sub.add_parser(
        "formats", help="JSON vs MessagePack vs permessage-deflate, same load, one run"
    )
    p.add_argument("--pin", action="store_true", help="server on core 0, clients on core 1")
    p.add_argument("--warmup", type=positive(float), default=3.0)
    p.add_argument("--duration", type=positive(float), default=10.0)
    p.add_argument("--procs", type=positive(int), default=1, help="client processes")
    p.add_argument("--clients", type=positive(int), default=100)
    p.add_argument("--symbols", type=positive(int), default=10)
    p.add_argument("--per-client", type=positive(int), default=5)
    p.add_argument("--offered", type=positive(float), default=10_000.0, help="deliveries/s")
    p.add_argument(
        "--batch", action="store_true", help="FEED_BATCH_FRAMES=1 (default: one message per frame)"
    )
    p.add_argument("--variants", type=variant_list, default=list(VARIANTS))


SCENARIOS = {"formats": run}
