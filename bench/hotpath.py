"""The host's per-exchange Python work, in process: frame cutting, decoding, deciding, encoding.

CPU time (``process_time``) per call over many calls of what the host does with one
request once its bytes are in: cut the frame (in this tree, with
:class:`volact.wire.FrameReader`; the old host did it inline), decode it, decide
(count, sign the ticket) and encode the reply. Steadier than the socket benchmark
on a busy machine. With ``--baseline SRC`` the same measurement runs alternately
in a child process importing the code under SRC, and the ratios are printed.

    .venv/bin/python bench/hotpath.py [--calls 20000] [--rounds 5] [--baseline SRC]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path


def measure(calls: int) -> dict[str, float]:
    """µs of CPU per call for this interpreter's volact (whichever tree it imports)."""
    from volact import wire
    from volact.catalog import demo_catalog
    from volact.signing import SigningKey

    try:
        from volact.testing.hosts import make_test_host
    except ImportError:  # an older tree: the helper lived in the policy module
        from volact.host.policy import make_test_host  # type: ignore[attr-defined,no-redef]

    cat = demo_catalog()
    core = make_test_host(SigningKey.from_seed(bytes(32)), cat)
    sku = cat.skus[2].id
    now = int(time.time())
    frames = [
        wire.encode(
            wire.ActivateRequest(
                sku, uuid.UUID(int=i + 1), os.urandom(16), now, wire.LicenseState.GRACE,
                1000, False, f"pc-{i:05d}",
            )
        )
        for i in range(calls)
    ]  # fmt: skip
    reader_cls = getattr(wire, "FrameReader", None)
    # Decide once per machine first: the timed pass is renewals past the threshold (grants).
    # From loopback, as in `make bench` (a LAN address would meet the limit on new
    # machines per network after 1,000 of them).
    for f in frames:
        core.decide_frame(f, now=now, address="127.0.0.1")
    t0 = time.process_time()
    for f in frames:
        if reader_cls is not None:
            f = reader_cls(wire.MAX_REQUEST_FRAME, peer="client").feed(f)[0]
        else:  # what the old HostProtocol.data_received did inline
            need = 2 + int.from_bytes(f[:2], "big")
            assert need <= wire.MAX_REQUEST_FRAME and len(f) == need
        core.decide_frame(f, now=now, address="127.0.0.1")
    t1 = time.process_time()
    encode = getattr(wire, "encode_reply", None)
    if encode is None:
        from volact.host.fastwire import encode_reply as encode  # type: ignore[import-not-found]
    for _ in range(calls):
        encode(1, 24, 25, 120, 10080, bytes(8))
    t2 = time.process_time()
    return {
        "exchange_us": round((t1 - t0) / calls * 1e6, 2),
        "refusal_encode_us": round((t2 - t1) / calls * 1e6, 3),
    }


def _child(src: Path | None, calls: int) -> dict[str, float]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    code = (
        f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"import hotpath; print(json.dumps(hotpath.measure({calls})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
        timeout=600,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", type=Path, metavar="SRC")
    args = ap.parse_args(argv)
    if not 1 <= args.calls <= 1_000_000 or not 1 <= args.rounds <= 50:
        ap.error("--calls must be 1..1000000 and --rounds 1..50")
    variants: list[tuple[str, Path | None]] = [("current", None)]
    if args.baseline is not None:
        variants.insert(0, ("baseline", args.baseline.resolve()))
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in variants}
    for i in range(args.rounds):
        for name, src in variants:  # interleaved
            r = _child(src, args.calls)
            results[name].append(r)
            print(f"round {i + 1} {name}: {r}", flush=True)
    summary: dict[str, object] = {}
    for name, rs in results.items():
        summary[name] = {
            key: {
                "median": statistics.median(r[key] for r in rs),
                "min": min(r[key] for r in rs),
                "max": max(r[key] for r in rs),
            }
            for key in rs[0]
        }
    if args.baseline is not None:
        summary["ratio_current_to_baseline"] = {
            key: round(
                statistics.median(r[key] for r in results["current"])
                / statistics.median(r[key] for r in results["baseline"]),
                3,
            )
            for key in results["current"][0]
        }
    summary["load_average"] = os.getloadavg()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
