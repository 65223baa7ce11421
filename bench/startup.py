"""How long a `volact` command takes to start, against a bare interpreter in the same run.

A client CLI call runs on every managed machine, so start-up matters: the goals are
`volact --version` under 0.25 s and `volact client status` under 0.5 s on this
machine. Each round runs every command once, in turn (`python -c pass` first), so
that load from elsewhere hits all of them alike; the figures are wall-clock seconds,
min / median / max over the rounds, and the median less the bare interpreter's
median (what volact itself costs).

    .venv/bin/python bench/startup.py [--rounds 15] [--volact PATH ...]

`--volact` picks the installations to time (repeat it to compare several in the same
rounds, for example a venv with only `pip install volact`, no extras, or another
checkout's venv); each one's interpreter is the one next to it. The client home is
made in a temporary directory with this venv's `volact` (the authority's demo
catalog), so a timed installation needs no extra.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(sys.executable).parent
SKU = "Acme Desktop 2026 Professional"
GOALS = {"volact --version": 0.25, "volact client status": 0.5}


def _run(argv: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def make_client_home(work: Path, setup_volact: Path) -> Path:
    """A client home with the demo catalog's desktop GVLK, made by ``setup_volact``."""
    v = str(setup_volact)
    subprocess.run([v, "authority", "init", "--home", str(work / "authority"),
                    "--demo-catalog"], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    subprocess.run([v, "authority", "export-profile", "--home", str(work / "authority"),
                    "--out", str(work / "profile.json")], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    home = work / "client"
    subprocess.run([v, "client", "init", "--home", str(home), "--profile",
                    str(work / "profile.json"), "--sku", SKU], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--volact", type=Path, action="append",
                        help="a volact script to time (repeatable; default: this venv's)")
    args = parser.parse_args(argv)
    installs = [p.absolute() for p in args.volact or [HERE / "volact"]]

    with tempfile.TemporaryDirectory(prefix="volact-startup-") as tmp:
        home = str(make_client_home(Path(tmp), HERE / "volact"))
        commands: dict[tuple[Path, str], list[str]] = {}
        for volact in installs:
            commands[volact, "python -c pass"] = [str(volact.parent / "python"), "-c", "pass"]
            commands[volact, "volact --version"] = [str(volact), "--version"]
            commands[volact, "volact --help"] = [str(volact), "--help"]
            commands[volact, "volact client status"] = [
                str(volact), "client", "status", "--home", home
            ]
            commands[volact, "volact client status --json"] = [
                str(volact), "client", "status", "--home", home, "--json"
            ]
        for argv_ in commands.values():  # warm the page cache and .pyc files
            _run(argv_)
        times: dict[tuple[Path, str], list[float]] = {key: [] for key in commands}
        cpu: dict[tuple[Path, str], list[float]] = {key: [] for key in commands}
        for _ in range(args.rounds):
            for key, argv_ in commands.items():
                wall, used = _run(argv_)
                times[key].append(wall)
                cpu[key].append(used)

    print(f"{args.rounds} rounds, seconds: wall clock min / median / max, the median less"
          " the bare interpreter's (-pass), and the median CPU time (user + system)")  # fmt: skip
    for volact in installs:
        base = statistics.median(times[volact, "python -c pass"])
        print(f"\n{volact}")
        print(f"{'command':30} {'min':>7} {'median':>7} {'max':>7} {'-pass':>7} {'cpu':>7}"
              f" {'goal':>6}")  # fmt: skip
        for (install, name), values in times.items():
            if install != volact:
                continue
            med = statistics.median(values)
            goal = GOALS.get(name)
            print(
                f"{name:30} {min(values):7.3f} {med:7.3f} {max(values):7.3f} "
                f"{med - base:7.3f} {statistics.median(cpu[install, name]):7.3f} "
                f"{goal if goal else '':>6}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
