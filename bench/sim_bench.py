"""The fleet simulator's speed: a plain 90,000-machine x 180-day fleet and the case study.

Each run is its own process, so that its peak memory (``ru_maxrss``) is its own.
Prints, per run: wall time, process CPU time (steadier than wall time on a shared
machine), simulated exchanges per second of wall time, peak memory, and the load
average before and after; then min / median / max over the runs.

    .venv/bin/python bench/sim_bench.py [--runs 3] [--which plain case-study]
    .venv/bin/python bench/sim_bench.py --one plain      (one run, JSON; used by the above)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

from volact.sim import Simulation, case_study, simple_fleet


def one(which: str) -> dict[str, Any]:
    load0 = os.getloadavg()
    sc = case_study() if which == "case-study" else simple_fleet(
        clients=90_000, hosts=2, days=180
    )
    wall0, cpu0 = time.perf_counter(), time.process_time()
    sim = Simulation(sc)
    r = sim.run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "which": which,
        "clients": sc.clients,
        "days": sc.days,
        "exchanges": r.exchanges,
        "failed": r.failed,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "exchanges_per_wall_s": round(r.exchanges / wall),
        "exchanges_per_cpu_s": round(r.exchanges / cpu),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "planner_paths": r.distinct_paths,
        "full_decisions": r.full_decisions,
        "shortcut_decisions": r.shortcut_decisions,
        "licensed_at_end": r.by_state["licensed"][-1],
        "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--which", nargs="+", default=["plain", "case-study"],
                    choices=["plain", "case-study"])  # fmt: skip
    ap.add_argument("--one", choices=["plain", "case-study"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return 0
    results: dict[str, list[dict[str, Any]]] = {w: [] for w in args.which}
    for i in range(args.runs):
        for w in args.which:  # interleaved, so that load hits both alike
            out = subprocess.run(
                [sys.executable, __file__, "--one", w], capture_output=True, text=True,
                check=True, timeout=900,
            ).stdout  # fmt: skip
            res = json.loads(out)
            results[w].append(res)
            print(f"run {i + 1} {w}: {json.dumps(res)}", flush=True)
    for w, rs in results.items():
        print(f"\n{w}: {rs[0]['clients']:,} clients, {rs[0]['days']:g} days, "
              f"{rs[0]['exchanges']:,} exchanges")  # fmt: skip
        for key in ("wall_s", "cpu_s", "exchanges_per_wall_s", "exchanges_per_cpu_s",
                    "peak_rss_mb"):  # fmt: skip
            v = [r[key] for r in rs]
            print(f"  {key:<22} min {min(v):>10,} median {statistics.median(v):>10,} "
                  f"max {max(v):>10,}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
