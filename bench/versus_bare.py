"""The host next to the floor: volact's CPU per exchange against a bare uvloop server.

Starts a throw-away activated volact host (this tree; with ``--baseline SRC`` also one
running the code under SRC; repeatable) and ``bench/bare_server.py`` (accept, read the frame,
Ed25519-sign 86 bytes, write 179 bytes, close), drives each in turn with the same
load from :mod:`volact.bench.loadgen` (one exchange per new TCP connection), in
interleaved rounds, and reports the CPU each server's process tree spent per
exchange (so the load generator's own cost does not count): median, min and max
over the rounds, and the ratios to the bare server. Then, unless ``--rate 0``, the
same at a fixed offered load (``--rate`` exchanges/s) against saturation.

    .venv/bin/python bench/versus_bare.py [--rounds 5] [--requests 6000]
        [--clients 20000] [--concurrency 32] [--processes 1] [--rate 1000]
        [--rate-seconds 6] [--rate-concurrency 256] [--baseline [NAME=]OTHER_TREE/src ...] [--json]

Bounded: ``rounds × servers`` runs of ``--requests`` exchanges each (every run also
stops after 120 s), loopback only.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import make_host, start_host
from volact.bench.loadgen import BenchSpec, run

HERE = Path(__file__).resolve().parent
_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants, from /proc."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return total


def start_bare() -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen([sys.executable, str(HERE / "bare_server.py")], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the bare server did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


def measure(pid: int, spec: BenchSpec) -> dict[str, Any]:
    """One run against the server ``pid``: its tree's CPU per exchange and the run's rate."""
    c0 = tree_cpu(pid)
    r = run(spec)
    cpu = tree_cpu(pid) - c0
    total = r["exchanges"] + r["errors"]
    return {
        "cpu_us_per_exchange": round(cpu / total * 1e6, 1) if total else None,
        "exchanges_per_s": r["exchanges_per_s"],
        "errors": r["errors"],
        "results": r["results"],
    }


def stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=6000, help="exchanges per run")
    ap.add_argument("--clients", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--rate", type=float, default=1000.0, help="fixed offered load (0: skip)")
    ap.add_argument("--rate-seconds", type=float, default=6.0)
    ap.add_argument(
        "--rate-concurrency", type=int, default=256,
        help="exchanges in flight allowed in the paced runs (enough that the offered rate "
        "is sent whatever a server's latency: rate × latency must fit)",
    )  # fmt: skip
    ap.add_argument(
        "--baseline", action="append", default=[], metavar="[NAME=]SRC",
        help="also serve the code under SRC (repeatable; NAME: baseline, baseline2, ...)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not (1 <= args.rounds <= 50 and 1 <= args.requests <= 200_000):
        ap.error("--rounds 1..50, --requests 1..200000")

    load_before = os.getloadavg()
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="volact-versus-") as tmp:
        try:
            sku = None
            hosts: list[tuple[str, Path | None]] = []
            for i, spec_text in enumerate(args.baseline):
                name, sep, src_text = spec_text.rpartition("=")
                if not sep:
                    name = "baseline" if i == 0 else f"baseline{i + 1}"
                hosts.append((name, Path(src_text).resolve()))
            hosts.append(("volact", None))
            for name, src in hosts:
                profile = make_host(Path(tmp) / name)
                sku = profile.catalog.skus[2].id  # a desktop SKU: threshold 25
                servers[name] = start_host(Path(tmp) / name, src)
                # Every machine contacts the host once: the count passes the threshold
                # and the timed runs are renewals (grants), as in steady state.
                run(BenchSpec("127.0.0.1", servers[name][1], sku, clients=args.clients,
                              requests=args.clients, concurrency=args.concurrency,
                              processes=args.processes))  # fmt: skip
            servers["bare"] = start_bare()
            assert sku is not None

            def spec(port: int, **kw: Any) -> BenchSpec:
                kw.setdefault("concurrency", args.concurrency)
                return BenchSpec("127.0.0.1", port, sku, clients=args.clients,
                                 processes=args.processes, **kw)  # fmt: skip

            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
            order = list(servers)
            for i in range(args.rounds):
                # Each round starts with another server: whichever runs first or last
                # in a round was seen to gain or lose several per cent.
                for name in order[i % len(order) :] + order[: i % len(order)]:
                    proc, port = servers[name]
                    r = measure(proc.pid, spec(port, requests=args.requests, duration=None))
                    runs[name].append(r)
                    if not args.json:
                        cpu, rate = r["cpu_us_per_exchange"], r["exchanges_per_s"]
                        print(f"round {i + 1} {name:8}: {cpu} µs/exchange, {rate:.0f}/s, "
                              f"errors {r['errors']}", flush=True)  # fmt: skip
            table = {n: stats([r["cpu_us_per_exchange"] for r in rs]) for n, rs in runs.items()}
            # Ratios per round (each pair ran back to back), then their spread.
            ratios = {
                n: stats(
                    [
                        a["cpu_us_per_exchange"] / b["cpu_us_per_exchange"]
                        for a, b in zip(runs[n], runs["bare"], strict=True)
                    ]
                )
                for n in runs
                if n != "bare"
            }
            # This tree against each baseline, per round (A/B of a change).
            versus = {
                n: stats(
                    [
                        a["cpu_us_per_exchange"] / b["cpu_us_per_exchange"]
                        for a, b in zip(runs["volact"], runs[n], strict=True)
                    ]
                )
                for n in runs
                if n not in ("bare", "volact")
            }
            out = {"cpu_us_per_exchange": table, "ratio_to_bare": ratios,
                   "volact_to_baseline": versus,
                   "errors": sum(r["errors"] for rs in runs.values() for r in rs),
                   "runs": runs}  # fmt: skip
            if args.rate > 0:
                fixed: dict[str, Any] = {}
                for name, (proc, port) in servers.items():
                    paced = measure(proc.pid, spec(port, duration=args.rate_seconds,
                                                   rate=args.rate,
                                                   concurrency=args.rate_concurrency))  # fmt: skip
                    sat = table[name]["median"]
                    fixed[name] = {**paced, "ratio_to_saturation": round(
                        paced["cpu_us_per_exchange"] / sat, 2)}  # fmt: skip
                out["fixed_rate"] = {"offered_per_s": args.rate, **fixed}
        finally:
            for proc, _ in servers.values():
                proc.send_signal(signal.SIGTERM)
            for proc, _ in servers.values():
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    out["machine"] = {"cpus": os.cpu_count(), "load_average_before": load_before,
                      "load_average_after": os.getloadavg(),
                      "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    if args.json:
        print(json.dumps(out))
    else:
        for n, s in out["cpu_us_per_exchange"].items():
            ratio = out["ratio_to_bare"].get(n)
            rtxt = (
                f"  ratio to bare {ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f})"
                if ratio
                else ""
            )
            print(f"{n:8} {s['median']:7.1f} µs/exchange ({s['min']:.1f}-{s['max']:.1f}){rtxt}")
        for n, v in out["volact_to_baseline"].items():
            print(f"volact ÷ {n}: {v['median']:.3f} ({v['min']:.3f}-{v['max']:.3f}) per round")
        if "fixed_rate" in out:
            for n, f in out["fixed_rate"].items():
                if isinstance(f, dict):
                    cpu, got = f["cpu_us_per_exchange"], f["exchanges_per_s"]
                    print(f"at {args.rate:.0f}/s offered {n:8}: {cpu} µs/exchange "
                          f"({got:.0f}/s achieved), {f['ratio_to_saturation']}× saturation")
        print(f"load average before {load_before}, after {out['machine']['load_average_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
