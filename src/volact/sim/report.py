"""What a simulation shows: the JSON summary, PNG plots and one self-contained HTML report.

Plots use matplotlib's Agg backend (no display), imported only when plots are
asked for: matplotlib is the ``sim`` extra (``pip install 'volact[sim]'``). The
HTML page embeds its plots as data URIs and loads nothing from anywhere; every
name in it (hosts, populations, notes come from scenario files) is escaped.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from volact.errors import ConfigurationError
from volact.sim.engine import STATES, TCP_OVERHEAD_BYTES, SimResult

PLOTS = ("hosts.png", "requests.png", "states.png", "bytes.png", "cpu.png")
REPORT = "report.html"
EXTRA_HINT = "plots need matplotlib: install the extra with  pip install 'volact[sim]'"


def summary(r: SimResult) -> dict[str, Any]:
    """The run in numbers (what ``volact simulate --json`` prints)."""
    hosts = []
    for i, name in enumerate(r.host_names):
        hourly = r.hourly[i]
        peak = max(hourly, default=0)
        hosts.append(
            {
                "name": name,
                "clients": r.host_clients[i][-1] if r.host_clients[i] else 0,
                "count": r.host_count[i][-1] if r.host_count[i] else 0,
                "requests": sum(hourly),
                "peak_requests_per_hour": peak,
                "peak_day": round(hourly.index(peak) / 24, 2) if peak else None,
                "peak_cpu_percent": round(peak * r.cost_us / 1e6 / 3600 * 100, 4),
            }
        )
    total_hourly = [sum(col) for col in zip(*r.hourly, strict=True)] if r.hourly else []
    peak_total = max(total_hourly, default=0)
    return {
        "scenario": r.scenario.name,
        "clients": r.scenario.clients,
        "days": r.scenario.days,
        "hosts": hosts,
        "by_state": {s: r.by_state[s][-1] if r.by_state[s] else 0 for s in STATES},
        "results": r.results,
        "exchanges": r.exchanges,
        "failed_connections": r.failed,
        "clients_with_failed_connection": r.clients_failed_exchange,
        "clients_with_failed_attempt": r.clients_failed_attempt,
        "moves_told": r.moves_told,
        "clients_told_to_move": r.clients_told,
        "peak_requests_per_hour": peak_total,
        "frame_bytes": sum(r.bytes_daily),
        "host_cpu_us_per_exchange": round(r.cost_us, 1),
        "wall_s": round(r.wall_s, 3),
        "exchanges_per_wall_s": round(r.exchanges / r.wall_s) if r.wall_s > 0 else None,
        "planner_paths": r.distinct_paths,
        "host_decisions": {"full": r.full_decisions, "shortcut": r.shortcut_decisions},
        "notes": list(r.notes),
    }


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigurationError(EXTRA_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def require_plotting() -> None:
    """Fail early, with the extra to install, when matplotlib is missing."""
    _pyplot()


def write_plots(r: SimResult, out: Path) -> list[str]:
    """The PNG plots in ``out``; returns their file names."""
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    days = r.days
    hours_x = [h / 24 for h in range(len(r.hourly[0]))] if r.hourly else []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)

    # Matplotlib's default cycle has 10 colours: with more hosts (the case study has
    # 12) two hosts would share one; tab20 keeps each host's colour its own.
    palette = plt.get_cmap("tab10" if len(r.host_names) <= 10 else "tab20")

    def host_color(i: int) -> Any:
        return palette(i % palette.N)

    fig, ax = plt.subplots(figsize=(9, 4.2))
    for i, name in enumerate(r.host_names):
        ax.plot(days, r.host_clients[i], label=f"{name} clients", color=host_color(i))
        ax.plot(days, r.host_count[i], linestyle="--", color=host_color(i), alpha=0.7)
    ax.set_xlabel("day")
    ax.set_ylabel("machines")
    ax.set_title("Clients per host (solid: cached host) and the host's count (dashed)")
    ax.legend(fontsize=7, ncol=2)
    save(fig, PLOTS[0])

    fig, ax = plt.subplots(figsize=(9, 4.2))
    total = [sum(col) for col in zip(*r.hourly, strict=True)] if r.hourly else []
    ax.plot(hours_x, total, linewidth=0.6, color="tab:blue", label="all hosts")
    if total and max(total):
        peak = max(total)
        at = total.index(peak) / 24
        ax.annotate(
            f"peak {peak:,}/h (day {at:.1f})", (at, peak), xytext=(0.6, 0.9),
            textcoords="axes fraction", arrowprops={"arrowstyle": "->"},
        )  # fmt: skip
        ax.plot([at], [peak], "o", color="tab:red")
    ax.set_xlabel("day")
    ax.set_ylabel("requests per hour")
    ax.set_title("Requests per hour (activations, renewals, license fetches)")
    save(fig, PLOTS[1])

    fig, ax = plt.subplots(figsize=(9, 4.2))
    ax.stackplot(days, *[r.by_state[s] for s in STATES], labels=list(STATES), alpha=0.85)
    ax.set_xlabel("day")
    ax.set_ylabel("machines")
    ax.set_title("Clients by license state")
    ax.legend(loc="upper left", fontsize=8)
    save(fig, PLOTS[2])

    fig, ax = plt.subplots(figsize=(9, 4.2))
    xd = list(range(len(r.bytes_daily)))
    ax.plot(xd, [b / 1e6 for b in r.bytes_daily], label="volact frames")
    with_tcp = [
        (b + n * TCP_OVERHEAD_BYTES) / 1e6
        for b, n in zip(r.bytes_daily, r.connections_daily, strict=True)
    ]
    ax.plot(xd, with_tcp, linestyle="--", label="with TCP/IP headers (estimate)")
    ax.set_xlabel("day")
    ax.set_ylabel("MB per day")
    ax.set_title("Bytes on the wire per day, both directions")
    ax.legend(fontsize=8)
    save(fig, PLOTS[3])

    fig, ax = plt.subplots(figsize=(9, 4.2))
    for i, name in enumerate(r.host_names):
        cpu = [n * r.cost_us / 1e6 / 3600 * 100 for n in r.hourly[i]]
        if any(cpu):
            ax.plot(hours_x, cpu, linewidth=0.6, label=name, color=host_color(i))
    ax.set_xlabel("day")
    ax.set_ylabel("% of one core (hourly mean)")
    ax.set_title(f"Host CPU estimate ({r.cost_us:.0f} µs per exchange, measured)")
    ax.legend(fontsize=7, ncol=2)
    save(fig, PLOTS[4])
    return list(PLOTS)


def write_html(r: SimResult, out: Path, plots: list[str]) -> Path:
    """One page with the summary table, the notes and the plots inlined."""
    s = summary(r)
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(h['name'])}</td><td>{h['clients']:,}</td><td>{h['count']:,}</td>"
        f"<td>{h['requests']:,}</td><td>{h['peak_requests_per_hour']:,}</td>"
        f"<td>{h['peak_cpu_percent']:.3f}</td></tr>"
        for h in s["hosts"]
    )
    states = "".join(f"<tr><td>{e(k)}</td><td>{v:,}</td></tr>" for k, v in s["by_state"].items())
    notes = "".join(f"<li>{e(n)}</li>" for n in s["notes"])
    imgs = ""
    for name in plots:
        data = base64.b64encode((out / name).read_bytes()).decode("ascii")
        imgs += f'<figure><img alt="{e(name)}" src="data:image/png;base64,{data}"></figure>\n'
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>volact simulation: {e(s["scenario"])}</title>
<style>
body {{ font-family: sans-serif; max-width: 60rem; margin: 1rem auto; color: #222; }}
table {{ border-collapse: collapse; margin: .5rem 0; }}
td, th {{ border: 1px solid #bbb; padding: .2rem .5rem; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>volact simulation: {e(s["scenario"])}</h1>
<p>{e(r.scenario.description)}</p>
<p>{s["clients"]:,} clients, {s["days"]:g} days, {s["exchanges"]:,} exchanges
({s["failed_connections"]:,} connections that reached no host), peak
{s["peak_requests_per_hour"]:,} requests per hour, {s["frame_bytes"]:,} frame bytes.
Simulated in {s["wall_s"]:.1f} s of wall time.</p>
<h2>Hosts at the end</h2>
<table><tr><th>host</th><th>clients</th><th>count</th><th>requests</th>
<th>peak per hour</th><th>peak CPU %</th></tr>{rows}</table>
<h2>Clients by state at the end</h2>
<table>{states}</table>
<h2>Notes</h2><ul>{notes}</ul>
<h2>Plots</h2>
{imgs}
</body></html>
"""
    path = out / REPORT
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["EXTRA_HINT", "PLOTS", "REPORT", "require_plotting", "summary", "write_html",
           "write_plots"]  # fmt: skip
