"""``python -m marketfeed_client``: see marketfeed_client/cli.py."""

from __future__ import annotations

import sys

from marketfeed_client.cli import main

if __name__ == "__main__":
    sys.exit(main())
