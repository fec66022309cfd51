#!/usr/bin/env python3
"""One entry point that needs only Python 3.11+: set up, then run the feed or its tests.

    python3 run.py            # the feed on http://127.0.0.1:8000 (embedded default)
    python3 run.py --workers 4   # four daphne workers on that one port, on Redis (a cluster)
    python3 run.py test       # the whole test suite (pytest arguments may follow)
    python3 run.py setup      # only make .venv/ and install the locked requirements (and axe-core)
    python3 run.py lock       # after editing requirements*.txt: regenerate the *.lock files
    python3 run.py lock --upgrade   # the same, moving every unpinned dependency to its newest
    python3 run.py cluster    # a local scale-out cluster: Redis, runticker, two daphne
                              # (`cluster --workers N`: N daphne on one port; `cluster --help`)
    python3 run.py bench SCENARIO ...   # a benchmark (bench/; `bench --help`)
    python3 run.py help       # this text (also -h, --help)
    python3 run.py PORT=9000  # the feed on another port (or set PORT / HOST in the environment)

The first run makes .venv/ and installs requirements-dev.lock (every runtime
and test package, pinned with its hash) with `pip install --require-hashes`,
then the client from client/ (editable); later runs reuse it and reinstall
only when the lock changed. A .venv left half-made (no python, no pip, or an
install that did not finish) is rebuilt. requirements.txt (the server) and
requirements-dev.txt (tests) are the files to edit; `run.py lock` compiles
them into requirements.lock, requirements-dev.lock and bench/requirements.lock
with pip-tools, installed into a scratch environment of its own. Only the
standard library is used until the virtual environment exists. `setup` and
`test` also install axe-core, the accessibility tests' one npm package, with
`npm ci` in tests/a11y (pinned with its hash in package-lock.json); without npm
those tests skip, except under CI (CI=true), where a missing npm is an error.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

from deploy.procs import daphne_command

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
# Written only after a complete install: without it the .venv is half-made.
STAMP = VENV / ".requirements.sha256"
CLIENT = ROOT / "client"
# axe-core for tests/browser/test_accessibility.py: injected into pages by the tests only.
A11Y = ROOT / "tests" / "a11y"
A11Y_STAMP = A11Y / "node_modules" / ".package-lock.sha256"  # written after a complete npm ci

COMMANDS = ("test", "setup", "lock", "cluster", "bench")
HELP = ("help", "-h", "--help")
SETTABLE = ("HOST", "PORT")  # run.py PORT=9000
MAX_WORKERS = 64  # as deploy/cluster.py


class Lock:
    """A lock file: compiled from human-edited inputs by pip-compile, installed with hashes."""

    def __init__(
        self, path: str, source: str, *, also: tuple[str, ...] = (), constraint: str | None = None
    ) -> None:
        self.path = ROOT / path
        self.source = ROOT / source  # what pip-compile reads
        self.inputs = [self.source, *(ROOT / name for name in also)]
        self.constraint = None if constraint is None else ROOT / constraint

    def inputs_digest(self) -> str:
        """Of what the lock is made from: the requirements and constraints less their
        comments, and the client's pyproject.toml (its dependencies)."""
        files = [*self.inputs]
        if self.constraint is not None:
            files.append(self.constraint)
        digest = hashlib.sha256()
        for path in files:
            text = path.read_text()
            if path.suffix in (".txt", ".lock"):
                lines = (re.sub(r"(^|\s)#.*", "", line).strip() for line in text.splitlines())
                text = "\n".join(line for line in lines if line)
            digest.update(text.encode() + b"\0")
        return digest.hexdigest()

    def recorded_digest(self) -> str | None:
        match = re.search(r"^# inputs sha256: (\w+)$", self.path.read_text(), re.MULTILINE)
        return match.group(1) if match else None


RUNTIME_LOCK = Lock("requirements.lock", "requirements.txt")
DEV_LOCK = Lock(
    "requirements-dev.lock", "requirements-dev.txt",
    also=("requirements.txt", "client/pyproject.toml"), constraint="requirements.lock",
)
BENCH_LOCK = Lock(
    "bench/requirements.lock", "bench/requirements.txt", constraint="requirements-dev.lock"
)
LOCKS = (RUNTIME_LOCK, DEV_LOCK, BENCH_LOCK)  # in this order: each constrains the next

# pip-compile and the pip it drives, for `run.py lock` (a scratch environment, never .venv).
LOCK_TOOLS = ("pip==26.3", "pip-tools==7.7.0")
PIP = ["-m", "pip", "--disable-pip-version-check"]


def no_ensurepip() -> str:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return (
        f"marketfeed: this Python ({sys.executable}) has no working ensurepip, so it cannot make "
        f"the virtual environment .venv/ with pip in it. On Debian or Ubuntu: "
        f"apt install python3-venv (or {version}-venv for this {version}), then run this again."
    )


def make_venv(path: Path) -> None:
    """A new virtual environment with pip at ``path``, or exit saying what the system lacks."""
    try:
        import ensurepip  # noqa: F401  (Debian ships it apart, in python3-venv)
    except ImportError:
        sys.exit(no_ensurepip())
    try:
        venv.EnvBuilder(with_pip=True).create(path)
    except subprocess.CalledProcessError:
        # Debian's stub ensurepip fails here, after python itself was copied in.
        shutil.rmtree(path, ignore_errors=True)
        sys.exit(no_ensurepip())


def venv_problem() -> str | None:
    """Why .venv cannot be used as it is, or None."""
    if not PY.exists():
        return "it has no python"
    try:
        subprocess.run([str(PY), "-c", "import pip"], check=True, capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return "its python or pip does not run"
    if not STAMP.exists():
        return "an earlier install did not finish"
    return None


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (run.py starts on any python3)
        sys.exit("marketfeed needs Python 3.11 or newer")
    check_fresh(DEV_LOCK)
    problem = venv_problem()
    if problem is not None:
        if VENV.exists():
            print(f"rebuilding .venv ({problem}) ...", flush=True)
            shutil.rmtree(VENV)
        else:
            print("creating .venv ...", flush=True)
        make_venv(VENV)
    install_locked(DEV_LOCK, STAMP, "the locked requirements", editable=CLIENT)


def ensure_bench_requirements() -> None:
    """The benchmark's own packages (uvloop, matplotlib), installed on first use."""
    stamp = VENV / ".bench-requirements.sha256"
    install_locked(BENCH_LOCK, stamp, "the benchmark's locked requirements")


def ensure_axe(*, npm: str | None, ci: bool) -> None:
    """``npm ci`` in tests/a11y (axe-core, pinned with its hash), unless done for this lock.

    Without npm the accessibility tests skip, saying why; under CI (``ci``) a missing npm
    stops here instead, so that those tests cannot quietly not run.
    """
    lock = A11Y / "package-lock.json"
    if not lock.exists():
        return
    digest = hashlib.sha256(lock.read_bytes() + (A11Y / "package.json").read_bytes()).hexdigest()
    if A11Y_STAMP.exists() and A11Y_STAMP.read_text() == digest:
        return
    where = "tests/a11y; on Debian or Ubuntu: apt install npm"
    if npm is None:
        if ci:
            sys.exit(
                f"marketfeed: npm is missing, and CI runs the accessibility tests with "
                f"axe-core from npm ({where})"
            )
        print(
            f"note: no npm here, so axe-core is not installed and the accessibility tests "
            f"skip ({where})",
            flush=True,
        )
        return
    print("installing axe-core for the accessibility tests (npm ci in tests/a11y) ...", flush=True)
    A11Y_STAMP.unlink(missing_ok=True)
    command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    if subprocess.run(command, cwd=A11Y).returncode:
        sys.exit("marketfeed: `npm ci` in tests/a11y failed (its output is above)")
    A11Y_STAMP.write_text(digest)


def in_ci() -> bool:
    """CI=true (or 1, yes), as .ci/run and the usual CI services set it."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def check_fresh(lock: Lock) -> None:
    """Stop when an input changed after the lock was made: the lock would lack the change."""
    if not lock.path.exists() or lock.recorded_digest() != lock.inputs_digest():
        inputs = ", ".join(str(p.relative_to(ROOT)) for p in lock.inputs)
        sys.exit(
            f"marketfeed: {lock.path.relative_to(ROOT)} is older than its inputs ({inputs}): "
            f"run `python3 run.py lock` (then commit the .lock files)"
        )


def install_locked(lock: Lock, stamp: Path, what: str, *, editable: Path | None = None) -> None:
    """pip install --require-hashes -r ``lock`` (then ``editable``), unless done already."""
    check_fresh(lock)
    sources = [lock.path] + ([editable / "pyproject.toml"] if editable else [])
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"installing {what} ...", flush=True)
    stamp.unlink(missing_ok=True)  # until the install below completes, this .venv is half-made
    quiet = [*PIP, "install", "--quiet"]
    subprocess.run([str(PY), *quiet, "--require-hashes", "-r", str(lock.path)], check=True)
    if editable is not None:
        # A local path has no hash to check, so it comes apart from the lock, without
        # dependencies (the lock has them) and built with the locked setuptools.
        subprocess.run(
            [str(PY), *quiet, "--no-deps", "--no-build-isolation", "-e", str(editable)], check=True
        )
    stamp.write_text(digest)


def lock(args: list[str]) -> int:
    """Compile requirements*.txt into the .lock files with pip-compile --generate-hashes."""
    upgrade = "--upgrade" in args
    version = f"{sys.version_info.major}{sys.version_info.minor}"
    tools = Path(tempfile.gettempdir()) / f"marketfeed-lock-tools-py{version}"
    compile_ = tools / "bin" / "pip-compile"
    tools_stamp = tools / "tools.txt"
    wanted = " ".join(LOCK_TOOLS)
    if not (compile_.exists() and tools_stamp.exists() and tools_stamp.read_text() == wanted):
        print(f"installing {' and '.join(LOCK_TOOLS)} into {tools} ...", flush=True)
        shutil.rmtree(tools, ignore_errors=True)
        make_venv(tools)
        tools_py = str(tools / "bin" / "python")
        subprocess.run([tools_py, *PIP, "install", "--quiet", *LOCK_TOOLS], check=True)
        tools_stamp.write_text(wanted)
    env = dict(os.environ, CUSTOM_COMPILE_COMMAND="python3 run.py lock")
    for each in LOCKS:
        print(f"locking {each.path.relative_to(ROOT)} ...", flush=True)
        command = [
            str(compile_), "--quiet", "--generate-hashes", "--allow-unsafe", "--strip-extras",
            # The index and find-links of this machine's pip configuration stay out of the file.
            "--no-emit-index-url", "--no-emit-find-links", "--no-emit-trusted-host",
            "--output-file", str(each.path.relative_to(ROOT)),
        ]
        if upgrade:
            command.append("--upgrade")
        if each.constraint is not None:  # the same versions as the lock it builds on
            command += ["--constraint", str(each.constraint.relative_to(ROOT))]
        command.append(str(each.source.relative_to(ROOT)))
        if subprocess.run(command, cwd=ROOT, env=env).returncode:
            return 1
        finish_lock(each)
    names = ", ".join(str(each.path.relative_to(ROOT)) for each in LOCKS)
    print(f"locked: commit {names}", flush=True)
    return 0


def finish_lock(each: Lock) -> None:
    """Drop local path requirements (no hash; run.py installs them apart) and record the inputs."""
    lines = each.path.read_text().splitlines()
    kept: list[str] = []
    skipping = False
    for line in lines:
        if line.startswith(("-e ", "file:")):
            skipping = True  # the requirement and its "# via" lines
            continue
        if skipping and line.startswith("    "):
            continue
        skipping = False
        kept.append(line)
    # pip-compile warns about the path requirement just dropped.
    dropped = ("# WARNING: pip install will require", "# Consider using a hashable URL")
    kept = [line for line in kept if not line.startswith(dropped)]
    header_end = next(i for i, line in enumerate(kept) if not line.startswith("#"))
    kept = [line for line in kept[:header_end] if not line.startswith("# inputs sha256:")] + [
        f"# inputs sha256: {each.inputs_digest()}",
        *kept[header_end:],
    ]
    each.path.write_text("\n".join(kept) + "\n")


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PY), "manage.py", *args], cwd=ROOT, check=True, text=True, capture_output=True
    )


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


MAX_TEST_WORKERS = 4  # more live servers at once than this only contend for the cores


def test(args: list[str]) -> int:
    # The gates first, a second or two between them: lint over the tree, strict types over the
    # pure core (both configured in pyproject.toml). The first that fails stops the run.
    for gate in (["ruff", "check", "."], ["mypy"]):
        code = subprocess.call([str(VENV / "bin" / gate[0]), *gate[1:]], cwd=ROOT)
        if code:
            return code
    # pytest exits 5 when it collects nothing; that is a failure here, not a pass.
    return subprocess.call([str(PY), "-m", "pytest", *test_workers(args), *args], cwd=ROOT)


def test_workers(args: list[str]) -> list[str]:
    """pytest-xdist's ``-n``: one test process per core, at most four, unless ``args`` choose.

    The live tests mostly wait on the servers they start, so two processes on
    two cores took the suite from 19 to 13 minutes here. ``-n 0`` runs it in
    one process.
    """
    chosen = any(a.startswith(("-n", "--numprocesses", "--dist")) for a in args)
    cores = min(MAX_TEST_WORKERS, os.cpu_count() or 1)
    return [] if chosen or cores < 2 else ["-n", str(cores)]


def usage(problem: str | None = None) -> int:
    """The module docstring: on stdout with status 0 when asked for, else on stderr with 2."""
    if problem is None:
        print(__doc__.strip())
        return 0
    print(f"run.py: {problem}\n\n{__doc__.strip()}", file=sys.stderr)
    return 2


def main() -> int:
    args = sys.argv[1:]
    while args and args[0].partition("=")[0] in SETTABLE and "=" in args[0]:
        name, _, value = args.pop(0).partition("=")
        os.environ[name] = value
    workers = 1
    if args and args[0] == "--workers":
        if len(args) < 2 or not args[1].isdigit() or not 1 <= int(args[1]) <= MAX_WORKERS:
            return usage(f"--workers takes a number from 1 to {MAX_WORKERS}")
        workers, args = int(args[1]), args[2:]
    command = args[0] if args else None
    if command in HELP:
        return usage()
    if command is not None and command not in COMMANDS:
        return usage(f"unknown command {command!r}")
    if command == "lock":
        return lock(args[1:])
    ensure_venv()
    if command in ("setup", "test"):
        ensure_axe(npm=shutil.which("npm"), ci=in_ci())
    if command == "test":
        return test(args[1:])
    if command == "setup":
        return 0
    if command == "cluster":
        # exec, not a child: Ctrl-C must reach the cluster's own orderly shutdown.
        os.chdir(ROOT)
        os.execv(str(PY), [str(PY), "-m", "deploy.cluster", *args[1:]])
    if command == "bench":
        ensure_bench_requirements()
        os.chdir(ROOT)
        os.execv(str(PY), [str(PY), "-m", "bench", *args[1:]])
    if workers > 1:
        # Several workers share the port through the kernel; they need the Redis layout
        # (a private redis-server when REDIS_URL is unset) and one runticker: the cluster.
        os.chdir(ROOT)
        host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
        os.execv(str(PY), [
            str(PY), "-m", "deploy.cluster", "--workers", str(workers), "--host", host,
            "--port", port,
        ])
    return serve()


if __name__ == "__main__":
    sys.exit(main())
