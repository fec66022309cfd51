"""``python -m deploy.serve ARGS``: daphne, with secrets masked in its access log.

Takes exactly daphne's command line. The one difference: before daphne's
access log writes a request line, the values of query parameters that carry
credentials (``?token=``, PROTOCOL.md "Authentication" way 3, and the like)
are replaced by ``***``; everything else on the line stays as daphne wrote it.
daphne's own ``AccessLogGenerator`` prints the raw path with its query string,
so a token passed in the URL would otherwise sit in every log file.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import unquote_plus

from daphne.cli import CommandLineInterface
from daphne.server import Server

MASK = "***"
# Compared after percent-decoding and lower-casing the parameter's name.
SECRET_PARAMETERS = frozenset({"token", "access_token", "auth_token", "api_key", "key", "password"})


def mask_secrets(path: str) -> str:
    """``path`` with the value of every secret query parameter replaced by ``***``."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    query, hash_sep, fragment = query.partition("#")
    parts = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        if eq and unquote_plus(name).strip().lower() in SECRET_PARAMETERS:
            part = f"{name}={MASK}"
        parts.append(part)
    return f"{base}?{'&'.join(parts)}{hash_sep}{fragment}"


class MaskingServer(Server):  # type: ignore[misc]
    """daphne's server, handing its access log only masked paths."""

    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        path = details.get("path")
        if isinstance(path, str):
            details = {**details, "path": mask_secrets(path)}
        super().log_action(protocol, action, details)


class MaskingCommandLine(CommandLineInterface):  # type: ignore[misc]
    server_class = MaskingServer


def main() -> None:
    MaskingCommandLine().run(sys.argv[1:])


if __name__ == "__main__":
    main()
