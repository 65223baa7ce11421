"""The load generator: many simulated machines activating against a real host.

Each exchange is what a real client does: open a TCP connection, send one
activation request, read the reply until the host closes, close. ``clients``
distinct CMIDs take turns; ``concurrency`` exchanges run at once per process;
``processes`` processes share the work. Every run is bounded in count (a number of
requests) or time (a duration), and each exchange by a timeout. Targets are
loopback only: this tool measures a host on the same machine, it is not for
loading other people's hosts.

An exchange that gets no valid reply (refused, reset, timed out, malformed) is an
*error*; a refusal with a result code (``count_too_low``) is a *result*.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import ipaddress
import multiprocessing
import os
import struct
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

from volact.errors import DecodeError, UsageError
from volact.wire import (
    MAX_REPLY_FRAME,
    PROTOCOL_VERSION,
    TICKET_BYTES,
    ActivateRequest,
    LicenseState,
    MsgType,
    Result,
    encode,
)

_TIME = struct.Struct(">q")
_REPLY_FIXED = 4 + 1 + 16 + 8  # header, result, four counters, host id


@dataclass(frozen=True)
class BenchSpec:
    """What to run."""

    host: str  #: loopback address of the host
    port: int  #: its port
    sku: uuid.UUID  #: the SKU every simulated machine asks for
    clients: int  #: distinct simulated machines
    requests: int | None = None  #: total exchanges (None: run for ``duration``)
    duration: float | None = None  #: seconds to run (None: run ``requests``)
    concurrency: int = 64  #: exchanges in flight per process
    processes: int = 1  #: load-generating processes
    timeout: float = 5.0  #: seconds an exchange may take before it is an error
    vm_share: float = 0.0  #: fraction of machines that say they are virtual
    seed: int = 1  #: makes the CMIDs of a run reproducible
    rate: float | None = None  #: offered exchanges/s over all processes (None: as fast as it can)

    def __post_init__(self) -> None:
        if self.requests is None and self.duration is None:
            raise UsageError("give --requests or --duration (a run must be bounded)")
        if self.clients < 1 or self.concurrency < 1 or self.processes < 1:
            raise UsageError("--clients, --concurrency and --processes must be at least 1")
        if self.processes > MAX_PROCESSES:
            raise UsageError(
                f"--processes is at most {MAX_PROCESSES} (this machine has {os.cpu_count()} cores)"
            )
        if self.concurrency > MAX_CONCURRENCY:
            raise UsageError(f"--concurrency is at most {MAX_CONCURRENCY} per process")
        if not 0 < self.timeout <= 60:
            raise UsageError("--timeout must be more than 0 and at most 60 seconds")
        if self.requests is not None and self.requests < 1:
            raise UsageError("--requests must be at least 1")
        if self.duration is not None and not 0 < self.duration <= 3600:
            raise UsageError("--duration must be between 0 and 3600 seconds")
        if self.rate is not None and not 0 < self.rate <= 100_000:
            raise UsageError("--rate must be more than 0 and at most 100,000 exchanges/s")
        check_loopback(self.host)


#: Bounds on one run's load: a benchmark must not be able to fork-bomb the machine.
MAX_PROCESSES = 64
MAX_CONCURRENCY = 10_000


def check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"volact bench only targets this machine (127.0.0.1, ::1), not {host}")


@dataclass
class WorkerResult:
    """One process's tallies (summed by :func:`merge`)."""

    exchanges: int = 0  #: exchanges that got a valid reply
    errors: int = 0  #: exchanges without a valid reply
    error_kinds: Counter[str] = field(default_factory=Counter)  #: errors by cause
    results: Counter[str] = field(default_factory=Counter)  #: replies by result label
    latencies: list[float] = field(default_factory=list)  #: seconds, valid replies only
    max_request: int = 0  #: bytes, largest request frame sent
    max_reply: int = 0  #: bytes, largest reply frame received
    elapsed: float = 0.0  #: seconds this worker ran


class _Exchange(asyncio.Protocol):
    __slots__ = ("chunks", "done", "request")

    def __init__(self, request: bytes, done: asyncio.Future[bytes]) -> None:
        self.request = request
        self.done = done
        self.chunks: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(self.request)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is not None and not self.chunks:
                self.done.set_exception(exc)
            else:
                self.done.set_result(b"".join(self.chunks))


def _check_reply(frame: bytes) -> str:
    """The result label of a valid reply frame; DecodeError if it is not one."""
    n = len(frame)
    if n < _REPLY_FIXED or n > MAX_REPLY_FRAME:
        raise DecodeError("short" if n < _REPLY_FIXED else "long")
    if int.from_bytes(frame[:2], "big") != n - 2:
        raise DecodeError("bad length")
    if frame[2] != PROTOCOL_VERSION or frame[3] != MsgType.ACTIVATE_REPLY:
        raise DecodeError("not a reply")
    code = frame[4]
    if code not in Result._value2member_map_:
        raise DecodeError("unknown result")
    expected = _REPLY_FIXED + (TICKET_BYTES if code == Result.OK else 0)
    if n != expected:
        raise DecodeError("wrong size")
    return Result(code).label


def bench_cmid(seed: int, i: int) -> uuid.UUID:
    """Simulated machine ``i``'s CMID: as scattered as real ones (random UUIDs).

    Consecutive machines must not get neighbouring CMIDs: a host's store keeps its
    clients in CMID order, and requests from neighbours would share its pages,
    which real machines' requests do not (a benchmark would flatter the store).
    """
    digest = hashlib.blake2b(i.to_bytes(8, "big"), digest_size=16, key=str(seed).encode())
    return uuid.UUID(bytes=digest.digest(), version=4)


def _templates(spec: BenchSpec, first: int, count: int) -> list[tuple[bytes, bytes]]:
    """For each machine, the request frame split around the nonce and time."""
    out = []
    for i in range(first, first + count):
        cmid = bench_cmid(spec.seed, i)
        vm = (i % 1000) < spec.vm_share * 1000
        frame = encode(
            ActivateRequest(
                spec.sku, cmid, bytes(16), 0, LicenseState.GRACE, 43200, vm, f"bench-{i:07d}"
            )
        )
        # header 4 | sku 16 | cmid 16 | nonce 16 | time 8 | rest
        out.append((frame[:36], frame[60:]))
    return out


async def _worker_async(spec: BenchSpec, index: int, share: int | None) -> WorkerResult:
    loop = asyncio.get_running_loop()
    per = spec.clients // spec.processes
    first = index * per
    count = per if index < spec.processes - 1 else spec.clients - first
    templates = _templates(spec, first, max(count, 1))
    res = WorkerResult()
    deadline = None if spec.duration is None else time.monotonic() + spec.duration
    state = {"next": 0, "left": share}
    lat = res.latencies
    urandom = os.urandom
    pack = _TIME.pack

    def take() -> int | None:
        left = state["left"]
        if left is not None:
            if left <= 0:
                return None
            state["left"] = left - 1
        if deadline is not None and time.monotonic() >= deadline:
            return None
        i = cast(int, state["next"])
        state["next"] = i + 1
        return i % len(templates)

    async def one(request: bytes) -> None:
        fut: asyncio.Future[bytes] = loop.create_future()
        t0 = time.perf_counter()
        transport = None
        try:
            # One timeout for the whole exchange (asyncio.timeout: no extra task).
            async with asyncio.timeout(spec.timeout):
                transport, _ = await loop.create_connection(
                    lambda: _Exchange(request, fut), spec.host, spec.port
                )
                reply = await fut
        except (OSError, TimeoutError) as exc:
            res.errors += 1
            res.error_kinds[type(exc).__name__] += 1
            if transport is not None:
                transport.abort()
            return
        try:
            label = _check_reply(reply)
        except DecodeError as exc:
            res.errors += 1
            res.error_kinds[f"malformed: {exc}"] += 1
            return
        lat.append(time.perf_counter() - t0)
        res.exchanges += 1
        res.results[label] += 1
        if len(reply) > res.max_reply:
            res.max_reply = len(reply)

    # A paced run starts exchange n of this process at t0 + n / (its share of the rate):
    # a fixed offered load, whatever the latency (up to ``concurrency`` in flight).
    period = None if spec.rate is None else spec.processes / spec.rate
    sleep = asyncio.sleep

    async def runner() -> None:
        while True:
            n = cast(int, state["next"])
            i = take()
            if i is None:
                return
            if period is not None:
                wait = t0 + n * period - time.perf_counter()
                if wait > 0:
                    await sleep(wait)
            head, tail = templates[i]
            request = head + urandom(16) + pack(int(time.time())) + tail
            if len(request) > res.max_request:
                res.max_request = len(request)
            await one(request)

    t0 = time.perf_counter()
    await asyncio.gather(*(runner() for _ in range(spec.concurrency)))
    res.elapsed = time.perf_counter() - t0
    return res


def _run_worker(spec: BenchSpec, index: int, share: int | None) -> WorkerResult:
    from volact.host.server import new_event_loop

    # Young-generation collections every few hundred exchanges are pure overhead
    # here: every object an exchange makes dies with it or is kept to the end.
    gc.set_threshold(50_000, 20, 100)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(_worker_async(spec, index, share))


def _child(spec: BenchSpec, index: int, share: int | None, conn: Any) -> None:
    try:
        conn.send(_run_worker(spec, index, share))
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(spec: BenchSpec, *, host_pid: int | None = None) -> dict[str, Any]:
    """Run the benchmark; return the figures ``volact bench --json`` prints."""
    shares: list[int | None]
    if spec.requests is not None:
        base, extra = divmod(spec.requests, spec.processes)
        shares = [base + (1 if i < extra else 0) for i in range(spec.processes)]
    else:
        shares = [None] * spec.processes
    cpu0 = cpu_seconds(host_pid) if host_pid else None
    if host_pid and cpu0 is None:
        raise UsageError(f"--host-pid {host_pid}: no such process on this machine")
    own0 = _own_cpu()
    wall0 = time.perf_counter()
    if spec.processes == 1:
        results = [_run_worker(spec, 0, shares[0])]
    else:
        ctx = multiprocessing.get_context("fork")
        pipes, procs = [], []
        for i in range(spec.processes):
            parent, child = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, args=(spec, i, shares[i], child), daemon=True)
            p.start()
            child.close()
            pipes.append(parent)
            procs.append(p)
        limit = spec.duration if spec.duration is not None else 3600.0
        results = []
        for parent, p in zip(pipes, procs, strict=True):
            if parent.poll(limit + spec.timeout + 30):
                results.append(parent.recv())
            p.join(5)
            if p.is_alive():
                p.kill()
    wall = time.perf_counter() - wall0
    cpu1 = cpu_seconds(host_pid) if host_pid else None
    host_cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    out = merge(results, wall, spec, host_cpu=host_cpu)
    total = out["exchanges"] + out["errors"]
    if total:
        out["loadgen_cpu_us_per_exchange"] = round((_own_cpu() - own0) / total * 1e6, 1)
    return out


def _own_cpu() -> float:
    """CPU seconds of this process and its finished children (the load generator)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[k]


def merge(
    results: list[WorkerResult], wall: float, spec: BenchSpec, *, host_cpu: float | None
) -> dict[str, Any]:
    exchanges = sum(r.exchanges for r in results)
    errors = sum(r.errors for r in results)
    lat = sorted(x for r in results for x in r.latencies)
    codes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for r in results:
        codes.update(r.results)
        kinds.update(r.error_kinds)
    out: dict[str, Any] = {
        "target": f"{spec.host}:{spec.port}",
        "clients": spec.clients,
        "concurrency": spec.concurrency,
        "processes": spec.processes,
        "exchanges": exchanges,
        "errors": errors,
        "error_kinds": dict(kinds),
        "duration_s": round(wall, 3),
        "exchanges_per_s": round(exchanges / wall, 1) if wall > 0 else 0.0,
        "p50_ms": round(_pct(lat, 0.50) * 1000, 3),
        "p99_ms": round(_pct(lat, 0.99) * 1000, 3),
        "max_ms": round(lat[-1] * 1000, 3) if lat else 0.0,
        "max_request_bytes": max((r.max_request for r in results), default=0),
        "max_reply_bytes": max((r.max_reply for r in results), default=0),
        "results": dict(codes),
    }
    if host_cpu is not None:
        total = exchanges + errors
        out["host_cpu_s"] = round(host_cpu, 3)
        out["host_cpu_us_per_exchange"] = round(host_cpu / total * 1e6, 1) if total else None
    return out


__all__ = ["BenchSpec", "check_loopback", "cpu_seconds", "merge", "run"]
