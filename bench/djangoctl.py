"""A Django-configured helper process: database set-up and admin changes for a scenario.

The bench process itself never imports Django: one invocation runs servers
with different environments (embedded, Redis), and settings are read once per
process. So each deployment starts this helper with the servers' own
environment and talks to it in JSON lines on stdin/stdout:

    {"cmd": "setup", "symbols": 10, "rate": 50}  -> {"token": "...", "symbols": [...]}
    {"cmd": "rate", "rate": 80}                   -> {"updated": 10}
    {"cmd": "tokens", "n": 1000}                  -> {"tokens": [...]} (the bench user's, new)
    {"cmd": "halt", "symbol": "B000"}             -> {"t0": <time before the call>, "t1": ...}
    {"cmd": "resume", "symbol": "B000"}           -> the same
    {"cmd": "quit"}

Halts and resumes go through ``feeds.services`` as the admin's actions do, so
the ticker hears of them the same way (on commit through the channel layer
when it is Redis; through its poll when the layer is in another process's memory).
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from decimal import Decimal
from typing import Any

PREFIX = "B"
BENCH_EXCHANGE = "BENCH"


def symbol_names(n: int) -> list[str]:
    return [f"{PREFIX}{i:03d}" for i in range(n)]


def setup(symbols: int, rate: float, user: str) -> dict[str, Any]:
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    out = io.StringIO()
    call_command("feeduser", user, stdout=out)
    token = out.getvalue().strip().splitlines()[-1]
    names = instruments(symbols, rate)
    return {"token": token, "symbols": names}


def tokens(n: int, user: str) -> dict[str, Any]:
    """``n`` new API tokens of ``user``, one per client of a storm (knox rows, made in bulk)."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone
    from knox.models import get_digest_token, get_token_model
    from knox.settings import CONSTANTS, knox_settings

    owner = get_user_model().objects.get(username=user)
    model = get_token_model()
    expiry = timezone.now() + knox_settings.TOKEN_TTL if knox_settings.TOKEN_TTL else None
    made, rows = [], []
    for _ in range(n):
        digest, token = get_digest_token()
        made.append(token)
        rows.append(
            model(
                token_key=token[: CONSTANTS.TOKEN_KEY_LENGTH],
                digest=digest,
                user=owner,
                expiry=expiry,
            )
        )
    with transaction.atomic():
        model.objects.bulk_create(rows, batch_size=500)
    return {"tokens": made}


def instruments(n: int, rate: float) -> list[str]:
    """Exactly ``n`` active bench instruments at ``rate`` quotes/s; everything else inactive."""
    from feeds.models import Instrument

    names = symbol_names(n)
    Instrument.objects.exclude(symbol__in=names).update(active=False)
    have = set(Instrument.objects.filter(symbol__in=names).values_list("symbol", flat=True))
    Instrument.objects.bulk_create(
        Instrument(
            symbol=s,
            name=f"Bench {s}",
            exchange=BENCH_EXCHANGE,
            asset_class="equity",
            currency="USD",
            tick_size=Decimal("0.01"),
            lot_size=100,
            reference_price=Decimal("100.00"),
            volatility=0.3,
            quote_rate=rate,
            active=True,
        )
        for s in names
        if s not in have
    )
    Instrument.objects.filter(symbol__in=names).update(quote_rate=rate, active=True)
    return names


def set_active(symbol: str, active: bool) -> dict[str, float]:
    from feeds.models import Instrument
    from feeds.services import instrument_halt, instrument_resume

    action = instrument_resume if active else instrument_halt
    t0 = time.time()
    action(instruments=Instrument.objects.filter(symbol=symbol))
    return {"t0": t0, "t1": time.time()}


def handle(req: dict[str, Any]) -> dict[str, Any]:
    cmd = req.get("cmd")
    if cmd == "setup":
        return setup(int(req["symbols"]), float(req["rate"]), str(req.get("user", "bench")))
    if cmd == "rate":
        return {"updated": len(instruments(int(req["symbols"]), float(req["rate"])))}
    if cmd == "tokens":
        return tokens(int(req["n"]), str(req.get("user", "bench")))
    if cmd in ("halt", "resume"):
        return set_active(str(req["symbol"]), cmd == "resume")
    raise ValueError(f"unknown command {cmd!r}")


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketfeed.settings")
    import django

    django.setup()
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("cmd") == "quit":
            break
        try:
            reply = {"ok": True, **handle(req)}
        except Exception as exc:  # reported to the bench, which stops the scenario
            reply = {"ok": False, "error": f"{exc.__class__.__name__}: {exc}"}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
