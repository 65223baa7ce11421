"""MAK activations per second against a real `volact authority serve`, SQLite and PostgreSQL.

For each store (SQLite in the home; PostgreSQL from ``--postgres URL`` or a
throw-away cluster started with the test helper ``tests/services.py``) and each
worker count, it starts the service on 127.0.0.1, issues one MAK with room for
every request, and measures:

* direct: one machine per ``POST /v1/mak/activate``, ``--concurrency`` in flight
  (kept-alive connections, one request at a time each; ``--client httpx`` drives
  them through httpx instead, whose pool costs more CPU per request than the
  service: see :func:`direct`);
* batch: the same number of machines through ``POST /v1/mak/batch`` (1000 a call).

Every request must succeed (a failure aborts the run). It prints the figures and
writes ``bench/results/authority.json``. The load generator shares the machine's
cores with the service, so figures are a floor, not a ceiling.

    .venv/bin/python bench/authority_bench.py [--requests 2000] [--concurrency 32]
        [--workers 1,2] [--postgres URL | --no-postgres] [--client raw|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from volact.catalog import demo_catalog
from volact.documents import installation_id
from volact.exchanges import MakRequest

ROOT = Path(__file__).resolve().parent
VOLACT = [sys.executable, "-c", "from volact.cli import run; run()"]
SKU = next(s for s in demo_catalog().skus if s.group == "desktop").id


def cli(*args: str) -> dict[str, Any]:
    out = subprocess.run([*VOLACT, *args, "--json"], check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def start(home: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    cmd = [
        *VOLACT,
        "authority",
        "serve",
        "--home",
        str(home),
        "--listen",
        "127.0.0.1:0",
        "--workers",
        str(workers),
        "--rate-limit",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def requests(mak: str, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        cmid = uuid.uuid4()
        out.append(MakRequest(mak, cmid, SKU, installation_id(cmid, SKU), "bench").to_json())
    return out


async def direct(url: str, bodies: list[dict[str, Any]], concurrency: int) -> float:
    """Seconds to activate every body, one machine per request, ``concurrency`` in flight.

    Each of ``concurrency`` kept-alive connections sends one request at a time,
    pre-encoded, and reads its answer with a minimal HTTP/1.1 reader (about
    0.3 ms of CPU a request). httpx's client (:func:`direct_httpx`) takes 6-9 ms,
    more than the service, on the same two cores: at 32 in flight its pool
    (httpcore) checks about 150 connections for expiry per request, each check a
    ``getpeername`` and a ``poll``, and the client, not the service, set the
    figure (docs/authority.md, "Throughput").
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    todo = iter(
        (
            f"POST /v1/mak/activate HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(b)}\r\n\r\n"
        ).encode()
        + b
        for b in (json.dumps(body).encode() for body in bodies)
    )

    async def worker() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            for request in todo:
                for attempt in range(3):
                    if conn is None:
                        conn = await asyncio.open_connection(host, port)
                    reader, writer = conn
                    writer.write(request)
                    try:
                        status, body, keep = await asyncio.wait_for(_response(reader), 60)
                        break
                    except (OSError, asyncio.IncompleteReadError):
                        # A kept-alive connection the service closed as it was
                        # reused (its keep-alive timeout, on a loaded machine): the
                        # same request again is a repeat, never a second charge.
                        writer.close()
                        conn = None
                        if attempt == 2:
                            raise
                if status != 200 or b'"confirmation"' not in body:
                    raise SystemExit(f"activation failed: {status} {body[:200]!r}")
                if not keep:
                    writer.close()
                    conn = None
        finally:
            if conn is not None:
                conn[1].close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, connection kept alive) of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, keep = 0, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
    return status, await reader.readexactly(length), keep


async def direct_httpx(url: str, bodies: list[dict[str, Any]], concurrency: int) -> float:
    """As :func:`direct`, through httpx's async client (the load generator until 2026-12-02)."""
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(body: dict[str, Any]) -> None:
            async with sem:
                for attempt in range(3):
                    try:
                        r = await client.post(url + "/v1/mak/activate", json=body)
                        break
                    except (httpx.ReadError, httpx.RemoteProtocolError):
                        if attempt == 2:
                            raise
                if r.status_code != 200:
                    raise SystemExit(f"activation failed: {r.status_code} {r.text[:200]}")

        t0 = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return time.perf_counter() - t0


def batch(url: str, bodies: list[dict[str, Any]]) -> float:
    with httpx.Client(timeout=300) as client:
        t0 = time.perf_counter()
        for i in range(0, len(bodies), 1000):
            r = client.post(url + "/v1/mak/batch", json={"requests": bodies[i : i + 1000]})
            results = r.json()["results"]
            if r.status_code != 200 or any("confirmation" not in x for x in results):
                raise SystemExit(f"batch failed: {r.status_code} {r.text[:200]}")
        return time.perf_counter() - t0


def run_one(
    store: str, database: str | None, workers: int, n: int, conc: int, client: str = "raw"
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="volact-auth-bench-") as tmp:
        home = Path(tmp) / "auth"
        extra = ["--database", database] if database else []
        cli("authority", "init", "--home", str(home), "--demo-catalog", *extra)
        mak = cli(
            "authority",
            "issue-key",
            "--home",
            str(home),
            "--kind",
            "mak",
            "--group",
            "desktop",
            "--activations",
            str(3 * n + 100),
        )["key"]
        proc, url = start(home, workers)
        try:
            drive = direct_httpx if client == "httpx" else direct
            asyncio.run(drive(url, requests(mak, 50), conc))  # warm up connections and caches
            t_direct = asyncio.run(drive(url, requests(mak, n), conc))
            t_batch = batch(url, requests(mak, n))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    row = {
        "store": store,
        "workers": workers,
        "requests": n,
        "concurrency": conc,
        "client": client,
        "direct_per_s": round(n / t_direct, 1),
        "batch_per_s": round(n / t_batch, 1),
    }
    print(
        f"{store:10} workers={workers}  direct {row['direct_per_s']:8.1f}/s   "
        f"batch {row['batch_per_s']:8.1f}/s   ({n} machines each)",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database to use")
    ap.add_argument("--no-postgres", action="store_true", help="SQLite only")
    ap.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="direct load generator: raw kept-alive sockets (default) or httpx's client",
    )
    args = ap.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    c = args.client
    rows = [run_one("sqlite", None, w, args.requests, args.concurrency, c) for w in workers]
    if not args.no_postgres:
        pg: Any = None
        url = args.postgres
        if url is None:
            sys.path.insert(0, str(ROOT.parent / "tests"))
            from services import Postgres, ServiceMissing

            try:
                pg = Postgres()
                pg.start()
            except ServiceMissing as exc:
                print(f"postgresql: skipped ({exc})")
                pg = None
        try:
            for w in workers:
                if pg is not None:
                    url = pg.create_database(f"bench_{w}_{uuid.uuid4().hex[:8]}")
                if url is not None:
                    rows.append(run_one("postgresql", url, w, args.requests, args.concurrency, c))
        finally:
            if pg is not None:
                pg.close()
    out = {
        "benchmark": "authority MAK activations",
        "cpus": os.cpu_count(),
        "note": "load generator on the same machine as the service",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "results": rows,
    }
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "authority.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {ROOT / 'results' / 'authority.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
