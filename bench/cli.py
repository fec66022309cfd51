"""The bench command line: ``python -m bench <scenario> [options]``.

One sub-command per scenario; each starts everything it needs, runs the feed
and then the reference, tears it all down and writes
``bench/results/<scenario>-<UTC timestamp>.json``. ``all`` runs every scenario
in order and then ``report``, which regenerates docs/PERFORMANCE.md from the
newest result of each scenario. Every child process is ended on the way out,
Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from typing import Any

from bench import c100k, connections, crash, formats, procs, results, scenarios
from bench.report import SCENARIOS
from bench.scenarios import OVERLOAD_RCVBUF
from bench.servers import SERVERS

# The order `all` runs them in, the order the report lists them in; c100k and
# crashstorm need the machine to themselves for minutes, so they run only when asked for.
ORDER = tuple(s for s in SCENARIOS if s not in ("c100k", "crashstorm"))
STREAM_SHAPES = {  # clients, symbols, symbols per client
    "quick": (20, 5, 5),
    "sweep": (100, 10, 10),
    "batch": (100, 10, 10),
    "mix200": (200, 100, 10),
    "mix1000": (1000, 50, 5),
    "overload": (100, 10, 10),
    "layers": (100, 10, 10),
    "fan146": (146, 21, 21),
}
LAYER_SERVERS = {  # the scenarios that run several deployments side by side
    "layers": (
        "embedded",
        "redis-pubsub",
        "redis-pubsub-shards",
        "redis-core",
        "redis-pubsub-2",
        "redis-pubsub-2-shards",
    ),
    "fan146": ("embedded", "redis-pubsub", "redis-pubsub-shards"),
}
HELP = {
    "quick": "≤ 20 s smoke run (embedded + reference); exits 1 if delivery collapses",
    "sweep": "offered deliveries/s stepped up, one quote per frame",
    "batch": "the sweep with FEED_BATCH_FRAMES=1 (reference --batch)",
    "mix200": "200 clients x 10 of 100 symbols, 20,000 deliveries/s",
    "mix1000": "1,000 clients x 5 of 50 symbols, 50,000 deliveries/s",
    "overload": "far beyond capacity: conflation or backlog?",
    "layers": "embedded vs redis-pubsub vs redis-core vs two daphnes on redis-pubsub, "
    "on one Redis and sharded over two, same points",
    "fan146": "146 clients x 21 of 21 symbols, 15,000 deliveries/s: embedded, Redis on one "
    "instance and sharded over two, reference, side by side",
    "idle": "RSS per idle authenticated connection",
    "storm": "many authenticated handshakes at once",
    "admin": "halt/resume through the services: time until every subscriber knows",
    "all": "every scenario in order, then report",
    "report": "write docs/PERFORMANCE.md from the newest results",
}


def offered_list(text: str) -> list[float]:
    """``5k,10k,20000`` → [5000, 10000, 20000]."""
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        scale = 1000 if part.endswith("k") else 1
        try:
            value = float(part.rstrip("k")) * scale
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {part!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"offered load must be positive: {part!r}")
        out.append(value)
    return out


def server_list(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in SERVERS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown server(s) {bad}; choose from {', '.join(SERVERS)}"
        )
    return names


def positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {kind.__name__}: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def common(p: argparse.ArgumentParser, *, warmup: float, duration: float, procs_: int) -> None:
    p.add_argument(
        "--pin",
        action="store_true",
        help="server side on core 0, load generator on core 1 (taskset)",
    )
    p.add_argument(
        "--warmup", type=positive(float), default=warmup, help="seconds before the window"
    )
    p.add_argument("--duration", type=positive(float), default=duration, help="window seconds")
    p.add_argument("--procs", type=positive(int), default=procs_, help="load-generator processes")
    p.add_argument("--no-reference", action="store_true", help="skip the reference run")
    p.add_argument(
        "--daphne-backlog",
        type=positive(int),
        default=None,
        help="listen with -e tcp:...:backlog=N instead of -b/-p (Twisted's default is 50)",
    )
    p.add_argument(
        "--client",
        choices=("lean", "asyncio"),
        default="lean",
        help="load-generator connection: bench/wire.py, or websockets' asyncio API",
    )
    p.add_argument(
        "--rcvbuf",
        type=positive(int),
        default=None,
        help="SO_RCVBUF of each client socket in bytes (default: the kernel's autotuning; "
        f"overload: {OVERLOAD_RCVBUF})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="scenario", required=True, metavar="scenario")
    for name, (clients, symbols, per_client) in STREAM_SHAPES.items():
        quick = name == "quick"
        p = sub.add_parser(name, help=HELP[name])
        common(p, warmup=1.0 if quick else 3.0, duration=3.0 if quick else 10.0, procs_=1)
        p.add_argument("--clients", type=positive(int), default=clients)
        p.add_argument("--symbols", type=positive(int), default=symbols)
        p.add_argument("--per-client", type=positive(int), default=per_client)
        p.add_argument(
            "--offered",
            type=offered_list,
            default=None,
            help="deliveries/s, comma-separated (5k,10k,...)",
        )
        if name in LAYER_SERVERS:
            p.add_argument("--servers", type=server_list, default=list(LAYER_SERVERS[name]))
        if name == "fan146":
            p.add_argument(
                "--rounds",
                type=positive(int),
                default=1,
                help="run every layout and the reference this many times, in turn, and report "
                "the median of each round's ratios (a VM's speed drifts between windows)",
            )
        else:
            p.add_argument("--server", choices=SERVERS, default="embedded")
        p.add_argument(
            "--profile",
            action="store_true",
            help="py-spy the server processes during each window (top functions in the JSON)",
        )
        p.add_argument(
            "--stop-after",
            type=int,
            default=2,
            help="stop raising the load after this many failed points in a row (0: never)",
        )
    p = sub.add_parser("idle", help=HELP["idle"])
    common(p, warmup=0, duration=0, procs_=2)
    p.add_argument("--server", choices=SERVERS, default="embedded")
    p.add_argument("--connections", type=positive(int), default=10_000)
    p.add_argument("--base", type=positive(int), default=10)
    p.add_argument("--concurrency", type=positive(int), default=200)
    p = sub.add_parser("storm", help=HELP["storm"])
    common(p, warmup=0, duration=0, procs_=1)
    p.add_argument("--server", choices=SERVERS, default="embedded")
    p.add_argument("--connections", type=positive(int), default=1000)
    p.add_argument("--concurrency", type=positive(int), default=1000)
    p.add_argument("--open-timeout", type=positive(float), default=30.0)
    p.add_argument(
        "--tokens", type=positive(int), default=1, help="distinct tokens over the clients"
    )
    p = sub.add_parser("admin", help=HELP["admin"])
    common(p, warmup=0, duration=0, procs_=1)
    p.add_argument("--server", choices=SERVERS, default="embedded")
    p.add_argument("--clients", type=positive(int), default=100)
    p.add_argument("--symbols", type=positive(int), default=5)
    p.add_argument("--rate", type=positive(float), default=10.0)
    p.add_argument("--repeat", type=positive(int), default=3)
    p.add_argument("--gap", type=positive(float), default=3.0, help="seconds between changes")
    formats.add_parser(sub, positive)  # not in `all`: JSON vs MessagePack vs deflate
    c100k.add_parser(sub, positive)  # not in `all`: 100,000 connections over workers
    crash.add_parser(sub, positive)  # not in `all`: a cluster of workers, one killed
    p = sub.add_parser("all", help=HELP["all"])
    p.add_argument("--pin", action="store_true")
    sub.add_parser("report", help=HELP["report"])
    return parser


def run_one(args: argparse.Namespace, argv: list[str]) -> int:
    name = args.scenario
    run = (
        scenarios.SCENARIOS.get(name)
        or formats.SCENARIOS.get(name)
        or c100k.SCENARIOS.get(name)
        or crash.SCENARIOS.get(name)
        or connections.SCENARIOS[name]
    )
    results.say(f"== {name} ==")
    data = run(args)
    options = {k: v for k, v in vars(args).items() if k != "scenario"}
    path = results.write(name, argv, options, data)
    results.say(f"-> {path.relative_to(results.RESULTS_DIR.parent.parent)}")
    if data.get("ok") is False:
        results.say("quick: FAILED: " + "; ".join(data["problems"]))
        return 1
    return 0


def run_all(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    status = 0
    for name in ORDER:
        argv = [name, *(["--pin"] if args.pin else [])]
        status |= run_one(parser.parse_args(argv), argv)
    from bench import report

    report.main()
    return status


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.scenario == "report":
        from bench import report

        return report.main()
    signal.signal(signal.SIGTERM, _terminate)
    procs.raise_nofile()
    if args.pin:
        procs.pin_self(procs.CLIENT_CORE)
    try:
        if args.scenario == "all":
            return run_all(args, parser)
        return run_one(args, argv)
    except KeyboardInterrupt:
        results.say("bench: interrupted; stopping everything")
        return 130
    except (RuntimeError, ValueError, OSError) as exc:
        results.say(f"bench: {args.scenario} failed: {exc}")
        return 2
    finally:
        procs.kill_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
