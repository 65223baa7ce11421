"""``volact simulate`` and ``volact plan``: the fleet simulator and the capacity planner.

A thin shell over :mod:`volact.sim`: read the scenario (a file, a built-in name, or
``--clients/--hosts/--days``), run it with a progress bar on a terminal, write the
plots and the HTML report to ``--out``, print the summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from volact.cli.common import add_json, output
from volact.errors import UsageError


def register(groups: Any) -> None:
    """Register ``volact simulate`` (``volact plan``: :func:`register_plan`)."""
    sim: argparse.ArgumentParser = groups.add_parser(
        "simulate",
        help="simulate a fleet of hosts and clients for months, in seconds",
        description=(
            "Run volact's own host and client cores in simulated time (no sockets, no "
            "sleeping) for a scenario: a TOML file (docs/simulator.md), the built-in "
            "'case-study', or a simple fleet from --clients/--hosts/--days."
        ),
    )
    sim.add_argument("--scenario", metavar="NAME|FILE",
                     help="'case-study' or a scenario TOML file")  # fmt: skip
    sim.add_argument("--clients", type=int, metavar="N", help="machines (simple fleet)")
    sim.add_argument("--hosts", type=int, metavar="N", help="hosts (simple fleet, default 2)")
    sim.add_argument("--days", type=float, metavar="D",
                     help="simulated days (default 180, or the scenario's)")  # fmt: skip
    sim.add_argument("--seed", type=int, metavar="S", help="random seed (default 1)")
    sim.add_argument("--out", type=Path, metavar="DIR",
                     help="write PNG plots and report.html here (needs volact[sim])")  # fmt: skip
    add_json(sim)
    sim.set_defaults(func=cmd_simulate)


def register_plan(groups: Any) -> None:
    """Register ``volact plan`` (its own group name; cli/plan.py)."""
    pl: argparse.ArgumentParser = groups.add_parser(
        "plan",
        help="recommend how many hosts, and where, from simulations",
        description=(
            "Recommend the number of key management hosts and their placement for an "
            "organisation, from simulations, and say why in plain words."
        ),
    )
    pl.add_argument("--clients", type=int, metavar="N", help="machines at one site")
    pl.add_argument(
        "--sites", nargs="+", metavar="NAME=CLIENTS[:LATENCY_S]",
        help="several sites, e.g. hq=60000 branch=500:2.5 (latency: seconds per exchange)",
    )  # fmt: skip
    add_json(pl)
    pl.set_defaults(func=cmd_plan)


def _scenario(args: argparse.Namespace) -> Any:
    from volact.sim.scenario import BUILTIN, load_scenario, simple_fleet

    days = args.days
    if days is not None and not 0 < days <= 3650:
        raise UsageError("--days must be more than 0 and at most 3650")
    if args.clients is not None and not 1 <= args.clients <= 2_000_000:
        raise UsageError("--clients must be 1..2000000")
    if args.scenario is not None:
        if args.clients is not None or args.hosts is not None:
            raise UsageError("--clients and --hosts make a simple fleet; not with --scenario")
        if args.scenario in BUILTIN:
            sc = BUILTIN[args.scenario]()
        else:
            path = Path(args.scenario)
            if not path.exists():
                known = ", ".join(sorted(BUILTIN))
                raise UsageError(
                    f"--scenario {args.scenario!r}: no such file and not a built-in "
                    f"scenario ({known})"
                )
            sc = load_scenario(path)
        return sc.with_overrides(days=days, seed=args.seed)
    if args.clients is None:
        raise UsageError("give --scenario NAME|FILE, or --clients N (with --hosts, --days)")
    return simple_fleet(
        clients=args.clients,
        hosts=2 if args.hosts is None else args.hosts,
        days=180 if days is None else days,
        seed=1 if args.seed is None else args.seed,
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    from volact.sim import report
    from volact.sim.engine import Simulation

    scenario = _scenario(args)
    if args.out is not None:
        report.require_plotting()  # say which extra to install before a long run
    show = sys.stderr.isatty() and not args.json
    if show:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"simulating {scenario.clients:,} machines", total=1.0)
            result = Simulation(
                scenario, progress=lambda f: bar.update(task, completed=f)
            ).run()
    else:
        result = Simulation(scenario).run()
    summary = report.summary(result)
    if args.out is not None:
        try:
            plots = report.write_plots(result, args.out)
            page = report.write_html(result, args.out, plots)
        except OSError as exc:
            raise UsageError(f"--out {args.out}: {exc.strerror or exc}") from None
        summary["plots"] = plots
        summary["report"] = str(page)
    else:
        summary["plots"] = []
    return output(args, summary, _text(summary))


def _text(s: dict[str, Any]) -> str:
    lines = [
        f"scenario {s['scenario']!r}: {s['clients']:,} clients, {s['days']:g} days, "
        f"simulated in {s['wall_s']:.1f} s ({s['exchanges']:,} exchanges)",
        "",
        f"{'host':<16}{'clients':>10}{'count':>10}{'requests':>12}{'peak/hour':>11}",
    ]
    for h in s["hosts"]:
        name = h["name"].encode("ascii", "replace").decode()
        lines.append(
            f"{name:<16}{h['clients']:>10,}{h['count']:>10,}{h['requests']:>12,}"
            f"{h['peak_requests_per_hour']:>11,}"
        )
    lines.append("")
    lines.append("by state: " + ", ".join(f"{k} {v:,}" for k, v in s["by_state"].items()))
    lines.append(f"failed connections: {s['failed_connections']:,}")
    for n in s["notes"]:
        lines.append(f"note: {n}")
    if s.get("report"):
        lines.append(f"report: {s['report']}")
    else:
        lines.append("(add --out DIR for the plots and an HTML report)")
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> int:
    from volact.sim.plan import Site, plan

    sites = [Site.parse(t) for t in args.sites or ()]
    if args.clients is not None:
        if args.clients < 1:
            raise UsageError("--clients must be at least 1")
        if sites:
            raise UsageError("give --clients for one site or --sites for several, not both")
        sites = [Site("site", args.clients)]
    result = plan(sites)
    lines = [result["summary"], ""]
    for sp in result["sites"]:
        lines.append(f"{sp['site']} ({sp['clients']:,} machines): {sp['hosts']} host(s)")
        lines.extend(f"  - {why}" for why in sp["reasons"])
    return output(args, result, "\n".join(lines))
