"""Issue 11's connection-slot attack, before and after: legitimate success while slots are held.

Serves a throw-away host (default settings: 1,024 slots, 256 per address) in its
own process, lets four loopback addresses (four /24 networks) hold 256 idle
connections each, reopening every one the moment it is closed, and has a fifth
address make ``--attempts`` exchanges one after the other (each bounded by 2 s).
With ``--baseline SRC`` the same runs against a host running the code under SRC,
alternately. Bounded: at most ``--max-opens`` attacker connections per run.

    .venv/bin/python bench/attacks.py [--runs 3] [--attempts 200] [--baseline SRC]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from run import start_host
from volact import wire
from volact.testing.attacks import slot_attack
from volact.testing.hosts import make_host_home


def _request(sku: uuid.UUID, i: int) -> bytes:
    return wire.encode(
        wire.ActivateRequest(
            sku, uuid.UUID(int=i + 1), os.urandom(16), int(time.time()),
            wire.LicenseState.GRACE, 100, False, f"pc-{i}",
        )
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--attempts", type=int, default=200)
    ap.add_argument("--per-source", type=int, default=256)
    ap.add_argument("--max-opens", type=int, default=100_000)
    ap.add_argument("--baseline", type=Path, metavar="SRC")
    args = ap.parse_args(argv)
    if not 1 <= args.runs <= 20 or not 1 <= args.attempts <= 10_000:
        ap.error("--runs must be 1..20 and --attempts 1..10000")
    variants: list[tuple[str, Path | None]] = [("current", None)]
    if args.baseline is not None:
        variants.insert(0, ("baseline", args.baseline.resolve()))
    rates: dict[str, list[float]] = {name: [] for name, _ in variants}
    with tempfile.TemporaryDirectory(prefix="volact-attack-") as tmp:
        for i in range(args.runs):
            for name, src in variants:
                home = Path(tmp) / f"{name}-{i}"
                profile, _, _ = make_host_home(home)  # default slots: 1,024, 256 per address
                proc, port = start_host(home, src)
                try:
                    frame = _request(profile.catalog.skus[2].id, i)
                    r = asyncio.run(
                        slot_attack("127.0.0.1", port, frame, per_source=args.per_source,
                                    attempts=args.attempts, max_opens=args.max_opens)
                    )  # fmt: skip
                finally:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                rates[name].append(r.success_rate)
                print(
                    f"run {i + 1} {name}: legitimate success {r.successes}/{r.attempts} "
                    f"({r.success_rate:.1%}) in {r.seconds} s; attacker connections "
                    f"{r.attacker_connections}",
                    flush=True,
                )
    summary = {
        name: {"median": statistics.median(v), "min": min(v), "max": max(v)}
        for name, v in rates.items()
    }
    summary["load_average"] = dict(enumerate(os.getloadavg()))  # type: ignore[assignment]
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
