"""What rebalancing costs the host's decision: ``HostCore.decide_frame`` per grant.

Four variants, interleaved in rounds so that machine noise hits them alike: a
version-1 request (the old path), a version-2 request with no rebalance, and
version-2 requests while 50 % and 100 % of clients are asked to move (one SHA-256
of the CMID more per grant). Each round decides the same 5,000 renewals per
variant; prints min / median / max microseconds per decision and the ratios to
the version-1 path. No sockets, no store: the policy alone.

    .venv/bin/python bench/rebalance_decide.py [--rounds 7] [--machines 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from dataclasses import replace

from volact.catalog import demo_catalog
from volact.host.rebalance import FULL_SHARE, Rebalance
from volact.signing import SigningKey
from volact.testing.hosts import make_test_host
from volact.wire import ActivateRequest, LicenseState, encode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--machines", type=int, default=5000)
    args = ap.parse_args()
    catalog = demo_catalog()
    core = make_test_host(SigningKey.from_seed(bytes(32)), catalog)
    sku = catalog.sku("Acme Desktop 2026 Professional").id
    now = int(time.time())
    base = [
        ActivateRequest(
            sku, uuid.uuid4(), os.urandom(16), now, LicenseState.LICENSED, 1000, False, f"pc-{i}"
        )
        for i in range(args.machines)
    ]
    v1 = [encode(r) for r in base]
    v2 = [encode(replace(r, version=2)) for r in base]
    for f in v1:  # every machine counted: every decision below is a grant
        core.decide_frame(f, now=now)
    variants = {
        "v1 request": (v1, None),
        "v2, no rebalance": (v2, None),
        "v2, share 50 %": (v2, Rebalance(5000, now)),
        "v2, drain 100 %": (v2, Rebalance(FULL_SHARE, now)),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, (frames, rb) in variants.items():
            core.rebalance = rb
            t0 = time.perf_counter()
            for f in frames:
                core.decide_frame(f, now=now)
            times[name].append((time.perf_counter() - t0) / len(frames) * 1e6)
    base_median = statistics.median(times["v1 request"])
    print(f"{args.rounds} rounds x {args.machines} grants; load average {os.getloadavg()[0]:.2f}")
    print(f"{'variant':<20} {'min':>7} {'median':>7} {'max':>7}  ratio (median)")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<20} {min(ts):7.1f} {med:7.1f} {max(ts):7.1f}  {med / base_median:.3f}")


if __name__ == "__main__":
    main()
