"""The console's cost to the activation path: the host benchmark with the console off
and on, runs interleaved in one process tree (A/B/C, repeated).

Variants: ``off`` (no --console), ``idle`` (console served, nobody looking) and
``polled`` (a script reads /api/v1/status once a second with a bearer token while
the load runs). Prints each run, then the median/min/max of each variant and the
ratios to ``off``. Every loop is bounded in count and time.

    .venv/bin/python bench/console_ab.py [--runs 3 --duration 5 --clients 5000]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from volact.bench.loadgen import BenchSpec, run
from volact.host import tokens
from volact.host.config import SERVE_FILE
from volact.testing.hosts import make_host_home


def _start(home: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "volact", "host", "serve", "--home", str(home),
         "--listen", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the host did not start: {line!r}")
    return proc


def _poll(url: str, token: str, stop: threading.Event, seen: list[int]) -> None:
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=5) as client:
        for _ in range(10_000):
            if stop.wait(1.0):
                return
            seen.append(client.get(url).status_code)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args(argv)
    variants = ("off", "idle", "polled")
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="volact-console-ab-") as tmp:
        procs: dict[str, subprocess.Popen[bytes]] = {}
        ports: dict[str, int] = {}
        consoles: dict[str, str] = {}
        token = poll_token = ""
        try:
            for v in variants:
                home = Path(tmp) / v
                profile, _, _ = make_host_home(home, max_connections=4096)
                sku = profile.catalog.skus[2].id
                _, token = tokens.create(home, "bench", now=int(time.time()))
                if v == "polled":
                    poll_token = token
                procs[v] = _start(home, [] if v == "off" else ["--console", "127.0.0.1:0"])
                info = json.loads((home / SERVE_FILE).read_text())
                ports[v] = int(info["ports"][0])
                consoles[v] = str(info.get("console"))
                run(BenchSpec("127.0.0.1", ports[v], sku, clients=args.clients,
                              requests=args.clients, concurrency=args.concurrency,
                              processes=args.processes))  # fmt: skip
            for i in range(args.runs):
                for v in variants:
                    stop, seen = threading.Event(), list[int]()
                    poller = None
                    if v == "polled":
                        poller = threading.Thread(target=_poll, args=(
                            f"http://{consoles[v]}/api/v1/status", poll_token, stop, seen))
                        poller.start()
                    r = run(BenchSpec("127.0.0.1", ports[v], sku, clients=args.clients,
                                      duration=args.duration, concurrency=args.concurrency,
                                      processes=args.processes), host_pid=procs[v].pid)  # fmt: skip
                    stop.set()
                    if poller is not None:
                        poller.join(10)
                        assert seen and set(seen) == {200}, seen
                    results[v].append(r)
                    print(f"run {i + 1} {v:<6}: {r['exchanges_per_s']:.0f}/s, host "
                          f"{r.get('host_cpu_us_per_exchange')} µs/exchange, p99 {r['p99_ms']} ms, "
                          f"errors {r['errors']}" + (f", {len(seen)} API reads" if seen else ""),
                          flush=True)  # fmt: skip
        finally:
            for p in procs.values():
                p.send_signal(signal.SIGTERM)
            for p in procs.values():
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
    base = statistics.median(r["exchanges_per_s"] for r in results["off"])
    for v in variants:
        rates = [r["exchanges_per_s"] for r in results[v]]
        cpu = [r["host_cpu_us_per_exchange"] for r in results[v]
               if r.get("host_cpu_us_per_exchange")]  # fmt: skip
        print(f"{v:<6}: {statistics.median(rates):.0f}/s (min {min(rates):.0f}, max "
              f"{max(rates):.0f}); ratio to off {statistics.median(rates) / base:.3f}; host CPU "
              f"µs/exchange median {statistics.median(cpu) if cpu else None}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
