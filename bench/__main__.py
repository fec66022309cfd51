"""``python -m bench``: the command-line entry point (see bench/cli.py)."""

from __future__ import annotations

import sys

from bench.cli import main

# Load-generator processes are spawned and import this module as __mp_main__:
# only the real entry point runs the command line.
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
