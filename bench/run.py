"""`make bench`: the standard host benchmark, figures written to bench/results/.

Creates a throw-away activated host (a generated vendor key signs its license: no
authority needed), serves it on 127.0.0.1 in its own process, warms it up so that
the count is past every threshold, then runs ``volact bench`` several times with
one exchange per new TCP connection and reports each run and the spread.

    .venv/bin/python bench/run.py [--runs 3] [--duration 10] [--clients 20000]
                                  [--concurrency 32] [--processes 2]
                                  [--baseline OTHER_TREE/src]

With ``--baseline``, a second host runs the code of another source tree (for
example ``git archive main | tar -x -C /tmp/base``, then ``/tmp/base/src``) and
the runs alternate between the two hosts, baseline first, so that both see the
same machine: the summary gives each one's figures and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from volact.bench.loadgen import BenchSpec, run
from volact.host.config import SERVE_FILE
from volact.profile import ProductProfile
from volact.testing.hosts import make_host_home

ROOT = Path(__file__).resolve().parent


def make_host(home: Path) -> ProductProfile:
    """An activated host home signed by a throw-away vendor key."""
    profile, _, _ = make_host_home(home, max_connections=4096)
    return profile


def start_host(home: Path, src: Path | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """Serve ``home`` in its own process (with the code under ``src`` when given)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    proc = subprocess.Popen(
        [sys.executable, "-m", "volact", "host", "serve", "--home", str(home),
         "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the host did not start: {line!r}")
    info = json.loads((home / SERVE_FILE).read_text())
    return proc, int(info["ports"][0])


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["exchanges_per_s"] for r in runs]
    cpus = [r["host_cpu_us_per_exchange"] for r in runs if r.get("host_cpu_us_per_exchange")]
    return {
        "exchanges_per_s": {
            "median": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
        },
        "host_cpu_us_per_exchange": {
            "median": statistics.median(cpus),
            "min": min(cpus),
            "max": max(cpus),
        }
        if cpus
        else None,
        "max_request_bytes": max(r["max_request_bytes"] for r in runs),
        "max_reply_bytes": max(r["max_reply_bytes"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "results")
    ap.add_argument("--baseline", type=Path, metavar="SRC",
                    help="also serve the code under SRC, runs interleaved with this tree's")
    args = ap.parse_args(argv)

    load_before = os.getloadavg()
    variants: list[tuple[str, Path | None]] = [("current", None)]
    if args.baseline is not None:
        variants.insert(0, ("baseline", args.baseline.resolve()))
    with tempfile.TemporaryDirectory(prefix="volact-bench-") as tmp:
        hosts: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
        try:
            for name, src in variants:
                home = Path(tmp) / f"host-{name}"
                profile = make_host(home)
                sku = profile.catalog.skus[2].id  # a desktop SKU: threshold 25
                proc, port = start_host(home, src)
                hosts[name] = (proc, port)
                # Warm-up: every machine contacts the host once (the count passes 25).
                warm = BenchSpec("127.0.0.1", port, sku, clients=args.clients,
                                 requests=args.clients, concurrency=args.concurrency,
                                 processes=args.processes)  # fmt: skip
                run(warm)
            for i in range(args.runs):
                for name, _ in variants:  # interleaved: each run of one, then of the other
                    proc, port = hosts[name]
                    spec = BenchSpec("127.0.0.1", port, sku, clients=args.clients,
                                     duration=args.duration, concurrency=args.concurrency,
                                     processes=args.processes)  # fmt: skip
                    r = run(spec, host_pid=proc.pid)
                    runs[name].append(r)
                    print(
                        f"run {i + 1} {name}: {r['exchanges_per_s']:.0f}/s, "
                        f"host {r.get('host_cpu_us_per_exchange')} µs/exchange, "
                        f"load generator {r.get('loadgen_cpu_us_per_exchange')} µs/exchange, "
                        f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, errors {r['errors']}, "
                        f"request {r['max_request_bytes']} B, reply {r['max_reply_bytes']} B",
                        flush=True,
                    )
        finally:
            for proc, _ in hosts.values():
                proc.send_signal(signal.SIGTERM)
            for proc, _ in hosts.values():
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        summary = _summary(runs["current"])
        summary.update(
            {
                "command": " ".join([sys.executable, *sys.argv]),
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": sys.version.split()[0],
                    # Other work on the machine is the main source of noise: keep it on record.
                    "load_average_before": load_before,
                    "load_average_after": os.getloadavg(),
                },
                "scenario": {
                    "clients": args.clients,
                    "duration_s": args.duration,
                    "runs": args.runs,
                    "concurrency": args.concurrency,
                    "processes": args.processes,
                    "mode": "one exchange per new TCP connection, every grant signed and "
                    "committed (SQLite WAL, synchronous=FULL, group commit)",
                },
                "runs": runs["current"],
            }
        )
        if args.baseline is not None:
            base = _summary(runs["baseline"])
            summary["baseline"] = {"src": str(args.baseline), **base, "runs": runs["baseline"]}
            summary["ratio_current_to_baseline"] = {
                key: {
                    stat: round(summary[key][stat] / base[key][stat], 3)
                    for stat in ("median", "min", "max")
                }
                for key in ("exchanges_per_s", "host_cpu_us_per_exchange")
                if summary[key] and base[key]
            }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for name in (f"host-{stamp}.json", "host-latest.json"):
        (args.out / name).write_text(json.dumps(summary, indent=2) + "\n")
    keys = ("exchanges_per_s", "host_cpu_us_per_exchange", "max_request_bytes",
            "max_reply_bytes", "errors", "baseline", "ratio_current_to_baseline")  # fmt: skip
    shown = {k: summary[k] for k in keys if k in summary}
    if "baseline" in shown:
        shown["baseline"] = {k: v for k, v in shown["baseline"].items() if k != "runs"}
    print(json.dumps(shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
