#!/usr/bin/env python3
"""One entry point that needs only Python 3.11+: set up, then run the feed or its tests.

    python3 run.py          # the feed on http://127.0.0.1:8000 (embedded default)
    python3 run.py test     # the whole test suite
    python3 run.py setup    # only make .venv/ and install the requirements
    python3 run.py cluster  # a local scale-out cluster: Redis, runticker, two daphne
    python3 run.py bench SCENARIO ...   # a benchmark (bench/; `bench --help`)
    python3 run.py PORT=9000 ...   (or set PORT / HOST in the environment)

The first run makes .venv/ and installs the pinned requirements; later runs
reuse it (and reinstall only when a requirements file changed). Only the
standard library is used until the virtual environment exists.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

from deploy.procs import daphne_command

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
REQUIREMENTS = ROOT / "requirements-dev.txt"


def ensure_venv() -> None:
    if sys.version_info < (3, 11):
        sys.exit("marketfeed needs Python 3.11 or newer")
    if not PY.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    inputs = sorted(ROOT.glob("requirements*.txt"))
    install(REQUIREMENTS, inputs, VENV / ".requirements.sha256", "pinned requirements")


def ensure_bench_requirements() -> None:
    """The benchmark's own packages (uvloop, matplotlib), installed on first use."""
    wanted = ROOT / "bench" / "requirements.txt"
    install(wanted, [wanted], VENV / ".bench-requirements.sha256", "the benchmark's pinned requirements")


def install(requirements: Path, inputs: list[Path], stamp: Path, what: str) -> None:
    """pip install -r ``requirements``, unless ``inputs`` are unchanged since the last time."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in inputs)).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        print(f"installing {what} ...", flush=True)
        subprocess.run(
            [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)],
            check=True,
        )
        stamp.write_text(digest)


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PY), "manage.py", *args], cwd=ROOT, check=True, text=True, capture_output=True)


def serve() -> int:
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    manage("migrate", "--noinput")
    # The demo password is random, generated on the first run into var/ (0600), shown that once.
    password_file = Path(os.environ.get("MARKETFEED_VAR_DIR") or ROOT / "var") / "demo-password"
    lines = manage("feeduser", "demo", "--password-file", str(password_file)).stdout.splitlines()
    token = lines[-1]  # a new token each run; earlier ones stay valid until they expire
    shown = [line.rsplit(": ", 1)[1] for line in lines if line.startswith("Generated password")]
    password = f"in {password_file}"
    if shown:
        password = f"{shown[0]}   (shown this once; kept in {password_file})"
    print(
        f"\n  marketfeed on http://{host}:{port}/   (Ctrl-C stops it)\n"
        f"  login: demo / password {password}\n"
        f"  API token: {token}\n"
        f"  try: websocat -H 'Authorization: Token {token}' 'ws://{host}:{port}/ws/quotes/'\n",
        flush=True,
    )
    cmd = daphne_command(str(PY), host, port)
    child = subprocess.Popen(cmd, cwd=ROOT)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            # Ctrl-C reaches daphne too; let it close its sockets and exit by itself.
            continue


def test(args: list[str]) -> int:
    # The gates first, a second or two between them: lint over the tree, strict types over the
    # pure core (both configured in pyproject.toml). The first that fails stops the run.
    for gate in (["ruff", "check", "."], ["mypy"]):
        code = subprocess.call([str(VENV / "bin" / gate[0]), *gate[1:]], cwd=ROOT)
        if code:
            return code
    # pytest exits 5 when it collects nothing; that is a failure here, not a pass.
    return subprocess.call([str(PY), "-m", "pytest", *args], cwd=ROOT)


def main() -> int:
    ensure_venv()
    args = sys.argv[1:]
    if args and args[0] == "test":
        return test(args[1:])
    if args and args[0] == "setup":
        return 0
    if args and args[0] == "cluster":
        # exec, not a child: Ctrl-C must reach the cluster's own orderly shutdown.
        os.chdir(ROOT)
        os.execv(str(PY), [str(PY), "-m", "deploy.cluster", *args[1:]])
    if args and args[0] == "bench":
        ensure_bench_requirements()
        os.chdir(ROOT)
        os.execv(str(PY), [str(PY), "-m", "bench", *args[1:]])
    return serve()


if __name__ == "__main__":
    sys.exit(main())
