"""Adding a host to a running fleet, simulated: rebalance against the case study's port block.

The same fleet (30,000 office desktops on two hosts, a third host added on day 30)
each way of :data:`volact.sim.moves.WAYS`, run by the fleet simulator with the real
host and client cores. Prints the table of ``docs/operations.md`` (Markdown, or
``--json``) and, with ``--plot FILE``, draws the new host's share of the clients
per day for each way (PNG, matplotlib Agg).

    .venv/bin/python bench/rebalance_vs_block.py [--clients 30000] [--plot docs/img/rebalance.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from volact.sim import Simulation
from volact.sim.engine import SimResult
from volact.sim.moves import TOLERANCE_PP, WAYS, Way, fleet, shares, summary

ADD_DAY = 30.0


def run(clients: int, days: float) -> list[tuple[Way, SimResult, dict[str, Any]]]:
    out = []
    for way in WAYS:
        cpu = time.process_time()
        r = Simulation(fleet(way, clients=clients, add_day=ADD_DAY, days=days), cost_us=80.0).run()
        row = summary(way, r, add_day=ADD_DAY)
        row["cpu_s"] = round(time.process_time() - cpu, 1)
        print(f"  {way.name}: {row['cpu_s']} s CPU", file=sys.stderr, flush=True)
        out.append((way, r, row))
    return out


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| way | days until balanced | shares at the end (kms-1/2/3, %) | clients with a "
        "failed connection | failed connections | clients with a failed attempt | "
        "refused replies after day 30 | clients told to move | fewest licensed after day 30 |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        bal = r["days_until_balanced"]
        lines.append(
            f"| {r['way']} | {'never' if bal is None else f'{bal:g}'} | "
            f"{' / '.join(f'{x:.1f}' for x in r['final_shares'])} | "
            f"{r['clients_failed_exchange']:,} | {r['connections_refused']:,} | "
            f"{r['clients_failed_attempt']:,} | {r['replies_refused_after_add']:,} | "
            f"{r['clients_told']:,} | {r['min_licensed_after_add']:,} of {r['clients']:,} |"
        )
    return "\n".join(lines)


def plot(results: list[tuple[Way, SimResult, dict[str, Any]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_new, ax_old) = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for way, r, _ in results:
        sh = [shares(r, i) for i in range(len(r.days))]
        ax_new.plot(r.days, [s[2] for s in sh], label=way.name)
        ax_old.plot(r.days, [s[0] for s in sh], label=way.name)
    for ax, title in ((ax_new, "kms-3 (added on day 30)"), (ax_old, "kms-1 (the blocked one)")):
        ax.axhspan(100 / 3 - TOLERANCE_PP, 100 / 3 + TOLERANCE_PP, color="0.9", zorder=0)
        ax.axvline(ADD_DAY, color="0.6", linestyle=":")
        ax.set_title(title)
        ax.set_xlabel("day")
        ax.set_ylabel("share of the clients (%)")
        ax.set_ylim(0, 80)
        ax.set_xlim(ADD_DAY - 5, max(results[0][1].days))
    ax_new.legend(fontsize=7, loc="upper left")
    fig.suptitle("30,000 clients, a third host added: the grey band is a fair share ±5 points")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=30_000)
    ap.add_argument("--days", type=float, default=65.0)
    ap.add_argument("--plot", metavar="FILE")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not 0 < args.clients <= 200_000 or not ADD_DAY < args.days <= 400:
        print("error: --clients 1..200000 and --days 31..400", file=sys.stderr)
        return 2
    results = run(args.clients, args.days)
    rows = [row for _, _, row in results]
    print(json.dumps(rows, indent=1) if args.json else table(rows))
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
