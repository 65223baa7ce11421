"""ClientIndex.touch and friends, this tree's against another version's, interleaved A/B.

``touch`` runs on every exchange of a host and in the fleet simulator's inner
loop: a change to the index must not slow it. Each round times every case once
per version, in alternating order, and the ratios (this tree ÷ before) are taken
per round; prints min / median / max of the per-operation CPU time and of the
ratio.

    git show main:src/volact/host/client_index.py > /tmp/ci_before.py
    .venv/bin/python bench/client_index_bench.py --before /tmp/ci_before.py

Cases (``--machines`` known machines, ``--ops`` operations a round):
  renew         touch of a machine the index holds (a host's renewals; the sim)
  renew+count   touch then count(now), as HostCore does for every request
  contains      ``cmid in index`` for a known machine (HostCore, every request)
  new           touch of machines new to an empty index (the sim's first contacts)
  first-touch   the first touch of each machine after loading from the store
                (this tree: a binary search and a move into the dict, once each)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from volact.host import client_index as after

T0 = 1_800_000_000


def load_before(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("client_index_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(module: ModuleType, rows: list[tuple[bytes, int, bool]], now: int) -> Any:
    """The index as a serving host builds it from its store."""
    if hasattr(module, "ClientColumns"):
        ordered = sorted(rows)
        columns = module.ClientColumns(
            b"".join(c for c, _, _ in ordered), [2 * t + vm for _, t, vm in ordered]
        )
        return module.ClientIndex.from_columns(columns, now=now)
    return module.ClientIndex.from_rows(rows, now=now)


def per_op(fn: Callable[[], int]) -> float:
    # CPU time of this process: on a loaded machine the wall clock mostly measures
    # the wait for a core.
    t0 = time.process_time_ns()
    n = fn()
    return (time.process_time_ns() - t0) / n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True, help="the other client_index.py")
    ap.add_argument("--machines", type=int, default=200_000)
    ap.add_argument("--ops", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    before = load_before(args.before)
    rng = random.Random(7)
    cmids = [rng.randbytes(16) for _ in range(args.machines)]
    vm = {c: i % 3 == 0 for i, c in enumerate(cmids)}
    rows = [(c, T0 - rng.randrange(29 * 86_400), vm[c]) for c in cmids]
    versions = {"before": before, "after": after}
    # Known machines, all in the dict already (this tree moves them on a first touch).
    warm = {name: build(m, rows, T0) for name, m in versions.items()}
    for index in warm.values():
        for c in cmids:
            index.touch(c, T0, vm[c])
    fresh_cmids = [rng.randbytes(16) for _ in range(args.ops)]
    vm.update((c, i % 3 == 0) for i, c in enumerate(fresh_cmids))
    fresh = [(c, vm[c]) for c in fresh_cmids]
    times: dict[str, dict[str, list[float]]] = {}
    clock = [T0]

    def renew(index: Any, sample: list[tuple[bytes, bool]], now: int) -> int:
        touch = index.touch
        for c, v in sample:
            touch(c, now, v)
        return len(sample)

    def renew_count(index: Any, sample: list[tuple[bytes, bool]], now: int) -> int:
        touch, count = index.touch, index.count
        for c, v in sample:
            touch(c, now, v)
            count(now, count_vms=False)
        return len(sample)

    def contains(index: Any, sample: list[tuple[bytes, bool]], now: int) -> int:
        hits = 0
        for c, _ in sample:
            hits += c in index
        assert hits == len(sample)
        return len(sample)

    cases: dict[str, Callable[[Any, list[tuple[bytes, bool]], int], int]] = {
        "renew": renew,
        "renew+count": renew_count,
        "contains": contains,
    }
    for r in range(args.rounds):
        sample = [(c, vm[c]) for c in rng.sample(cmids, args.ops)]
        order = list(versions) if r % 2 == 0 else list(reversed(versions))
        for case, fn in cases.items():
            clock[0] += 60
            for name in order:
                t = per_op(lambda: fn(warm[name], sample, clock[0]))  # noqa: B023
                times.setdefault(case, {}).setdefault(name, []).append(t)
        for name in order:
            empty = versions[name].ClientIndex()
            t = per_op(lambda: renew(empty, fresh, clock[0]))  # noqa: B023
            times.setdefault("new", {}).setdefault(name, []).append(t)
        for name in order:
            loaded = [build(versions[name], rows, clock[0])]
            t = per_op(lambda: renew(loaded.pop(), sample, clock[0]))  # noqa: B023
            times.setdefault("first-touch", {}).setdefault(name, []).append(t)
    load = os.getloadavg()
    print(
        f"{args.rounds} rounds, {args.machines} machines, {args.ops} operations a round; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; Python {sys.version.split()[0]}"
    )
    print(
        f"{'case':<12} {'before ns/op min/med/max':>26} {'after ns/op min/med/max':>25}"
        f" {'after/before min/med/max':>26}"
    )
    for case, by in times.items():
        b, a = by["before"], by["after"]
        ratios = sorted(x / y for x, y in zip(a, b, strict=True))

        def three(xs: list[float], fmt: str) -> str:
            xs = sorted(xs)
            return "/".join(format(v, fmt) for v in (xs[0], statistics.median(xs), xs[-1]))

        print(f"{case:<12} {three(b, '.0f'):>26} {three(a, '.0f'):>25} {three(ratios, '.3f'):>26}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
