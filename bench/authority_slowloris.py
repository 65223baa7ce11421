"""Slow-header attack on a real `volact authority serve`: does /v1/health still answer?

Starts the service on 127.0.0.1 (SQLite home), then, for ``--duration`` seconds,
an attacker process keeps ``--connections`` connections open, each sending a
request line and then one header byte every ``--interval`` seconds (and opening a
new connection whenever the service closes one), while this process probes
``GET /v1/health`` on a new connection every ``--probe-every`` seconds with a
``--probe-timeout``. It prints the probes' success rate and the connections the
attacker held, and writes ``bench/results/authority-slowloris.json``.

To measure another tree (e.g. before a change), put its ``src`` first on
``PYTHONPATH``; ``--serve-args`` passes options to ``serve`` (e.g. limits).

    .venv/bin/python bench/authority_slowloris.py [--connections 1500] [--interval 3]
        [--duration 30] [--server-nofile 1024] [--serve-args "--max-connections 900"]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent
VOLACT = [sys.executable, "-c", "from volact.cli import run; run()"]


def start(home: Path, extra: list[str], nofile: int) -> tuple[subprocess.Popen[bytes], str]:
    subprocess.run([*VOLACT, "authority", "init", "--home", str(home), "--demo-catalog"],
                   check=True, capture_output=True)  # fmt: skip
    cmd = [*VOLACT, "authority", "serve", "--home", str(home), "--listen", "127.0.0.1:0", *extra]

    def limit_files() -> None:  # a service's usual limit (systemd's default soft limit)
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=limit_files)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            url = json.loads((home / "serve.json").read_text())["url"]
            if httpx.get(url + "/v1/health", timeout=5).status_code == 200:
                return proc, str(url)
        except (OSError, ValueError, KeyError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the authority did not start")


async def _attack(port: int, n: int, interval: float, until: float, held: Any) -> None:
    open_now = 0

    async def one() -> None:
        nonlocal open_now
        while time.monotonic() < until:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            open_now += 1
            held.value = max(held.value, open_now)
            try:
                writer.write(b"POST /v1/mak/batch HTTP/1.1\r\nHost: a\r\nX-Slow: ")
                while time.monotonic() < until:
                    await writer.drain()
                    try:  # a closed connection shows as EOF while we wait
                        if await asyncio.wait_for(reader.read(1024), interval) == b"":
                            break
                    except TimeoutError:
                        pass
                    writer.write(b"a")
            except OSError:
                pass
            finally:
                open_now -= 1
                writer.close()

    await asyncio.gather(*(one() for _ in range(n)))


def attack(port: int, n: int, interval: float, until: float, held: Any) -> None:
    asyncio.run(_attack(port, n, interval, until, held))


def probe(url: str, until: float, every: float, timeout: float) -> tuple[int, int, list[float]]:
    ok = total = 0
    latencies: list[float] = []
    while time.monotonic() < until:
        t0 = time.monotonic()
        total += 1
        try:
            with httpx.Client(timeout=timeout) as c:  # a new connection per probe
                if c.get(url + "/v1/health").status_code == 200:
                    ok += 1
                    latencies.append(time.monotonic() - t0)
        except httpx.HTTPError:
            pass
        time.sleep(max(0.0, every - (time.monotonic() - t0)))
    return ok, total, latencies


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--connections", type=int, default=1500)
    ap.add_argument("--interval", type=float, default=3.0)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=5.0, help="attack before probing (s)")
    ap.add_argument("--probe-every", type=float, default=0.1)
    ap.add_argument("--probe-timeout", type=float, default=2.0)
    ap.add_argument("--serve-args", default="", help="extra options for `serve`")
    ap.add_argument("--label", default="", help="a name for this run in the results")
    ap.add_argument("--server-nofile", type=int, default=1024,
                    help="the service's open-file limit (default 1024, as under systemd; "
                    "0 keeps this shell's)")  # fmt: skip
    args = ap.parse_args(argv)
    if not 1 <= args.connections <= 5000 or not 1 <= args.duration <= 300:
        raise SystemExit("--connections 1..5000 and --duration 1..300")
    with tempfile.TemporaryDirectory(prefix="volact-slowloris-") as tmp:
        proc, url = start(Path(tmp) / "auth", shlex.split(args.serve_args), args.server_nofile)
        port = int(url.rsplit(":", 1)[1])
        try:
            held = multiprocessing.Value("i", 0)
            until = time.monotonic() + args.warmup + args.duration
            attacker = multiprocessing.Process(
                target=attack, args=(port, args.connections, args.interval, until, held)
            )
            attacker.start()
            time.sleep(args.warmup)
            ok, total, lat = probe(url, until, args.probe_every, args.probe_timeout)
            attacker.join(timeout=args.interval + 30)
            if attacker.is_alive():
                attacker.kill()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    lat.sort()
    row = {
        "label": args.label,
        "serve_args": args.serve_args,
        "server_nofile": args.server_nofile,
        "connections": args.connections,
        "interval_s": args.interval,
        "duration_s": args.duration,
        "attacker_held_max": held.value,
        "probes": total,
        "probes_ok": ok,
        "success": round(ok / total, 4) if total else 0.0,
        "latency_p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
        "latency_max_ms": round(1000 * lat[-1], 1) if lat else None,
        "load_avg": os.getloadavg(),
    }
    print(
        f"{args.label or 'run'}: /v1/health {ok}/{total} ok ({100 * row['success']:.1f} %), "
        f"attacker held up to {held.value} connections; p50 {row['latency_p50_ms']} ms",
        flush=True,
    )
    out = ROOT / "results" / "authority-slowloris.json"
    out.parent.mkdir(exist_ok=True)
    runs = json.loads(out.read_text())["runs"] if out.exists() else []
    out.write_text(json.dumps({"benchmark": "authority slow headers", "runs": [*runs, row]},
                              indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
