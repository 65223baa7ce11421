"""`volact bench`: load a real host on this machine and report the figures.

Reference: ``docs/cli.md``. The work is in :mod:`volact.bench.loadgen`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from volact.bench.loadgen import BenchSpec, cpu_seconds, run
from volact.cli.common import EXIT_ERROR, EXIT_OK, add_json, emit_json, error, load_profile
from volact.errors import UsageError
from volact.host.admin import serving
from volact.host.config import parse_listen


def register(groups: Any) -> None:
    p: argparse.ArgumentParser = groups.add_parser(
        "bench", help="load generator: many simulated machines against a host on this machine"
    )
    p.add_argument("--target", required=True, metavar="HOST:PORT",
                   help="the host, 127.0.0.1:PORT or [::1]:PORT")  # fmt: skip
    p.add_argument("--profile", required=True, type=Path, help="the vendor's product profile")
    p.add_argument("--sku", default=None, help="SKU to request (id, name or edition; "
                   "default: the first SKU of the catalog)")  # fmt: skip
    p.add_argument("--clients", type=int, required=True, help="distinct simulated machines")
    bound = p.add_mutually_exclusive_group(required=True)
    bound.add_argument("--requests", type=int, help="total exchanges to run")
    bound.add_argument("--duration", type=float, metavar="SECONDS", help="seconds to run")
    p.add_argument("--concurrency", type=int, default=64,
                   help="exchanges in flight per process (default 64)")  # fmt: skip
    p.add_argument("--processes", type=int, default=1,
                   help="load-generating processes (default 1)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=5.0,
                   help="seconds before an exchange counts as an error (default 5)")  # fmt: skip
    p.add_argument("--vm-share", type=float, default=0.0,
                   help="fraction of machines that report being virtual (default 0)")  # fmt: skip
    p.add_argument("--host-home", type=Path, metavar="DIR", required=True,
                   help="the target host's home; it must be serving in bench mode "
                        "(`volact host serve --bench`)")  # fmt: skip
    p.add_argument("--rate", type=float, default=None, metavar="PER_SECOND",
                   help="offer a fixed load of PER_SECOND exchanges/s over all processes "
                   "(default: as fast as the host answers)")  # fmt: skip
    p.add_argument("--host-pid", type=int, default=None,
                   help="the host's pid, to report its CPU time per exchange "
                        "(default: the bench-mode host's)")  # fmt: skip
    p.add_argument("--fail-on-error", action="store_true",
                   help="exit 1 when any exchange failed")  # fmt: skip
    add_json(p)
    p.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    sku = profile.catalog.sku(args.sku) if args.sku else profile.catalog.skus[0]
    host, port = parse_listen(args.target, 1688)
    if not 0 <= args.vm_share <= 1:
        raise UsageError("--vm-share must be between 0 and 1")
    spec = BenchSpec(
        host=host,
        port=port,
        sku=sku.id,
        clients=args.clients,
        requests=args.requests,
        duration=args.duration,
        concurrency=args.concurrency,
        processes=args.processes,
        timeout=args.timeout,
        vm_share=args.vm_share,
        rate=args.rate,
    )
    if args.host_pid is not None and cpu_seconds(args.host_pid) is None:
        raise UsageError(f"--host-pid {args.host_pid}: no such process on this machine")
    bench_host = _bench_mode_host(args.host_home, port)
    out = run(spec, host_pid=bench_host if args.host_pid is None else args.host_pid)
    if args.json:
        emit_json(out)
    else:
        cpu = out.get("host_cpu_us_per_exchange")
        sys.stdout.write(
            f"{out['exchanges']} exchanges in {out['duration_s']} s: "
            f"{out['exchanges_per_s']}/s, p50 {out['p50_ms']} ms, p99 {out['p99_ms']} ms\n"
            f"largest request {out['max_request_bytes']} B, reply {out['max_reply_bytes']} B; "
            f"errors {out['errors']} {out['error_kinds'] or ''}\n"
            f"results: {', '.join(f'{k} {v}' for k, v in sorted(out['results'].items()))}\n"
            + (f"host CPU: {cpu} µs per exchange\n" if cpu is not None else "")
        )
    if args.fail_on_error and out["errors"]:
        error(f"{out['errors']} exchange(s) got no valid reply: {out['error_kinds']}")
        return EXIT_ERROR
    return EXIT_OK


def _bench_mode_host(home: Path, port: int) -> int:
    """The pid of the host serving ``home`` in bench mode on ``port``; else a usage error.

    A bench against a host in normal mode would add its simulated machines to the
    real count for 30 days, and on a host below its threshold that would unlock
    activation for everyone (issue 12): so `volact bench` refuses it.
    """
    info = serving(home)
    how = f"start it with `volact host serve --home {home} --bench --listen 127.0.0.1:0`"
    if info is None:
        raise UsageError(f"no host is serving on {home}; {how}")
    if info.get("bench") is not True:
        raise UsageError(
            f"the host on {home} (pid {info.get('pid')}) is not in bench mode: a bench would "
            f"count its simulated machines toward the real thresholds; stop it and {how}"
        )
    if port not in info.get("ports", []):
        raise UsageError(
            f"--target port {port} is not where the bench-mode host on {home} listens "
            f"({', '.join(info.get('addresses', []))})"
        )
    return int(info["pid"])
