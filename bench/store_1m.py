"""A host store with 1,000,000 known clients: admin answers, start-up time and memory.

Fills a fresh host's SQLite store directly (executemany; by default every client
was seen in the last 30 days, the worst case for the host's memory, since all of
them are in its in-memory count), then times, in-process and as real
processes: ``volact host status --json``, ``report licensing``, ``report
activity``, ``events --limit 50``, and ``volact host serve`` from exec to its
"listening" line, with the serving host's resident memory (VmRSS, VmHWM) after
start and after a few exchanges (``--rounds`` start-ups; with ``--before-src``,
another tree's start-ups interleaved with this tree's, and the ratios per round,
wall-clock and CPU). Writes ``bench/results/store-1m-latest.json``.

    .venv/bin/python bench/store_1m.py [--clients 1000000] [--rounds 5 --before-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from volact import wire
from volact.host import admin
from volact.host.config import SERVE_FILE
from volact.host.store import HostStore
from volact.testing.hosts import make_host_home

ROOT = Path(__file__).resolve().parent
VOLACT = str(Path(sys.executable).with_name("volact"))
DAY = 86_400


def fill(home: Path, n: int, skus: list[bytes], now: int, span_days: int) -> None:
    rng = random.Random(1)
    store = HostStore.open(home)
    conn = store._conn  # direct bulk load: this is a benchmark fixture, not the host
    conn.execute("PRAGMA synchronous=OFF")
    batch = 50_000
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(n, start + batch)):
            last = now - rng.randrange(span_days * DAY)
            granted = rng.random() < 0.8
            rows.append(
                (uuid.UUID(int=i + 1).bytes, skus[i % len(skus)], f"pc-{i:07d}", "10.0.0.1",
                 i % 3 == 0, last - 30 * DAY, last, 0 if granted else 1,
                 last + 180 * DAY if granted else 0)
            )  # fmt: skip
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO clients (cmid, sku, workstation, address, vm, first_contact, "
            "last_contact, last_result, valid_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO events (time, kind, address, workstation, cmid, sku, vm, state, "
            "minutes_left, client_time, result, count) "
            "VALUES (?, 'request', ?, ?, ?, ?, ?, 1, 100, ?, ?, ?)",
            [(r[6], r[3], r[2], r[0], r[1], r[4], r[6], r[7], 25) for r in rows],
        )
        conn.execute("COMMIT")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO result_totals VALUES ('ok', ?), ('count_too_low', ?)",
                 (int(n * 0.8), n - int(n * 0.8)))  # fmt: skip
    for d in range(60):
        for s in skus:
            conn.execute(
                "INSERT INTO daily VALUES (?, ?, 'activation', ?), (?, ?, 'renewal', ?)",
                (now // DAY - d, s, n // 240, now // DAY - d, s, n // 60),
            )
    conn.execute("COMMIT")
    store.close()


def timed(*argv: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = subprocess.run([VOLACT, *argv], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{argv} failed: {out.stderr}")
    return {"command": "volact " + " ".join(argv[:2]), "seconds": round(wall, 3),
            "stdout_bytes": len(out.stdout)}  # fmt: skip


def rss(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            fields[k] = round(int(v.split()[0]) / 1024, 1)
    return fields


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process (start-up, not waiting for a core)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_once(h: str, home: Path, profile: Any, src: str | None) -> dict[str, Any]:
    """``volact host serve`` (from ``src`` if given): time to "listening", memory, 200 exchanges."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src  # ahead of the editable install
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [VOLACT, "host", "serve", "--home", h, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    startup = time.perf_counter() - t0
    try:
        cpu = cpu_seconds(proc.pid)
        mem_start = rss(proc.pid)
        port = json.loads((home / SERVE_FILE).read_text())["ports"][0]
        sku = profile.catalog.skus[2].id
        replies = []
        for i in range(200):
            req = wire.ActivateRequest(sku, uuid.UUID(int=i + 1), os.urandom(16),
                                       int(time.time()), wire.LicenseState.LICENSED, 1,
                                       False, "x")  # fmt: skip
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(wire.encode(req))
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            reply = wire.decode(data)
            assert isinstance(reply, wire.ActivateReply)
            replies.append(reply.result.label)
        mem_after = rss(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return {
        "startup_seconds": round(startup, 3),
        "startup_cpu_seconds": round(cpu, 3),
        "line": line.strip(),
        "memory_after_start": mem_start,
        "memory_after_200_exchanges": mem_after,
        "exchange_results": {r: replies.count(r) for r in set(replies)},
    }


def three(xs: list[float]) -> list[float]:
    """min, median, max."""
    return [round(min(xs), 3), round(statistics.median(xs), 3), round(max(xs), 3)]


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "startup_seconds_min_median_max": three([r["startup_seconds"] for r in runs]),
        "startup_cpu_seconds_min_median_max": three([r["startup_cpu_seconds"] for r in runs]),
        "vmrss_mb_after_start_min_max": [
            min(r["memory_after_start"]["VmRSS"] for r in runs),
            max(r["memory_after_start"]["VmRSS"] for r in runs),
        ],
        "vmhwm_mb_after_200_exchanges_max": max(
            r["memory_after_200_exchanges"]["VmHWM"] for r in runs
        ),
        "vmrss_mb_after_200_exchanges_max": max(
            r["memory_after_200_exchanges"]["VmRSS"] for r in runs
        ),
        "counts": sorted({r["line"] for r in runs}),
    }


def ratios(after: list[float], before: list[float]) -> list[float]:
    """this tree ÷ before, per round: min, median, max."""
    return three([a / b for a, b in zip(after, before, strict=True)])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=1_000_000)
    ap.add_argument(
        "--span-days",
        type=int,
        default=29,
        help="clients' last contacts spread over this many days (default 29)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "results")
    ap.add_argument("--rounds", type=int, default=1, help="serve start-ups per version")
    ap.add_argument(
        "--before-src",
        type=Path,
        help="another tree's src/ (e.g. from `git archive main src`): its start-ups "
        "interleaved with this tree's, ratios per round",
    )
    args = ap.parse_args()
    now = int(time.time())
    with tempfile.TemporaryDirectory(prefix="volact-1m-") as tmp:
        home = Path(tmp) / "host"
        profile, _, _ = make_host_home(home)
        skus = [s.id.bytes for s in profile.catalog.skus]
        t0 = time.perf_counter()
        fill(home, args.clients, skus, now, args.span_days)
        fill_s = time.perf_counter() - t0
        h = str(home)
        inproc = {}
        for name, fn in (
            ("status", lambda: admin.status(home, now=now)),
            ("report_licensing", lambda: admin.licensing(home, now=now)),
            ("report_activity", lambda: admin.activity(home, now=now)),
            ("events_50", lambda: admin.events(home, limit=50)),
        ):
            t1 = time.perf_counter()
            fn()
            inproc[name] = round(time.perf_counter() - t1, 3)
        results = [
            timed("host", "status", "--home", h, "--json"),
            timed("host", "report", "licensing", "--home", h, "--json"),
            timed("host", "report", "activity", "--home", h, "--json"),
            timed("host", "events", "--home", h, "--limit", "50", "--json"),
            timed("host", "events", "--home", h, "--since", "2000-01-01T00:00:00Z", "--json"),
        ]
        status = json.loads(
            subprocess.run([VOLACT, "host", "status", "--home", h, "--json"],
                           capture_output=True, text=True, timeout=120).stdout
        )  # fmt: skip
        variants: dict[str, str | None] = {"this tree": None}
        if args.before_src is not None:
            variants = {"before": str(args.before_src), "this tree": None}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                runs[name].append(serve_once(h, home, profile, variants[name]))
    first = runs["this tree"][0]
    summary = {
        "clients": args.clients,
        "fill_seconds": round(fill_s, 1),
        "count": status["count"],
        "admin_in_process_seconds": inproc,
        "admin_cli_seconds": results,
        "serve_startup_seconds": first["startup_seconds"],
        "serve_line": first["line"],
        "serve_memory_mb_after_start": first["memory_after_start"],
        "serve_memory_mb_after_200_exchanges": first["memory_after_200_exchanges"],
        "exchange_results": first["exchange_results"],
        "serve_rounds": {name: summarize(rs) for name, rs in runs.items()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if args.before_src is not None:
        summary["serve_startup_ratio_per_round"] = ratios(
            [r["startup_seconds"] for r in runs["this tree"]],
            [r["startup_seconds"] for r in runs["before"]],
        )
        summary["serve_startup_cpu_ratio_per_round"] = ratios(
            [r["startup_cpu_seconds"] for r in runs["this tree"]],
            [r["startup_cpu_seconds"] for r in runs["before"]],
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "store-1m-latest.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
