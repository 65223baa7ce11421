"""The capacity planner: how many hosts, where, and why, from simulations.

:func:`plan` takes the organisation's sites (machines and link latency each) and
runs the simulator on each: one host against two for a small site (the threshold
must be reached on every host: the case study's "fewer than 100 clients, one
host"), and, for a large one, a day-one rollout on the recommended number of
hosts to find the peak hour, checked against what one host serves with the
measured per-exchange cost and a margin. Every recommendation comes with the
reasons in plain words and the simulated figures behind them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from volact.client.planner import DEFAULT_EXCHANGE_SECONDS
from volact.errors import UsageError
from volact.sim.engine import Simulation
from volact.sim.scenario import HostSpec, Population, Scenario

#: Below about this many machines one host is recommended (case study, Phase 1).
SMALL_SITE = 100
#: Peak load may use at most this share of one core of a host.
CPU_BUDGET = 0.25
#: Largest fleet simulated for the peak; bigger sites are scaled linearly from it.
SAMPLE = 5000
PLAN_DAYS = 35


@dataclass(frozen=True)
class Site:
    """A place with machines."""

    name: str  #: shown in the plan
    clients: int  #: machines there
    latency_s: float = 0.02  #: seconds one exchange takes from there to the central hosts

    @classmethod
    def parse(cls, text: str) -> Site:
        """``NAME=CLIENTS[:LATENCY_S]``, e.g. ``branch=500:2.5``."""
        name, sep, rest = text.partition("=")
        count, _, lat = rest.partition(":")
        try:
            site = cls(name.strip(), int(count), float(lat) if lat else 0.02)
        except ValueError:
            site = None
        if not sep or site is None or not site.name or site.clients < 1:
            raise UsageError(f"--sites {text!r}: expected NAME=CLIENTS[:LATENCY_S], e.g. hq=5000")
        if not 0 <= site.latency_s <= 600 or math.isnan(site.latency_s):
            raise UsageError(f"--sites {text!r}: latency must be 0..600 seconds")
        return site


@dataclass
class SitePlan:
    site: Site
    hosts: int  #: recommended hosts at this site (0: served by the central hosts)
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site.name,
            "clients": self.site.clients,
            "latency_s": self.site.latency_s,
            "hosts": self.hosts,
            "reasons": self.reasons,
            "figures": self.figures,
        }


def _fleet(clients: int, hosts: int, *, office: bool, latency: float, days: int) -> Scenario:
    return Scenario(
        name=f"plan {clients} on {hosts}",
        days=days,
        hosts=tuple(HostSpec(f"h{i + 1}", weight=100) for i in range(hosts)),
        populations=(
            Population(
                "site",
                clients,
                ramp_days=1,
                hours="office" if office else "always",
                latency_s=latency,
            ),
        ),
    )


def _licensed_share(clients: int, hosts: int, latency: float, cost_us: float) -> float:
    r = Simulation(_fleet(clients, hosts, office=False, latency=latency, days=PLAN_DAYS),
                   cost_us=cost_us).run()  # fmt: skip
    return r.by_state["licensed"][-1] / clients


def plan_site(site: Site, *, cost_us: float | None = None) -> SitePlan:
    """A recommendation for one site."""
    n = site.clients
    probe = Simulation(_fleet(1, 1, office=False, latency=0.0, days=1), cost_us=cost_us)
    cost = probe.r.cost_us
    p = SitePlan(site, 0)
    p.figures["host_cpu_us_per_exchange"] = round(cost, 1)
    if site.latency_s >= DEFAULT_EXCHANGE_SECONDS:
        p.reasons.append(
            f"An exchange takes {site.latency_s:g} s from here, more than the client's "
            f"{DEFAULT_EXCHANGE_SECONDS:g} s timeout: these machines need a host of their own."
        )
    if n < SMALL_SITE:
        one = _licensed_share(n, 1, min(site.latency_s, 1.0), cost)
        two = _licensed_share(n, 2, min(site.latency_s, 1.0), cost)
        p.hosts = 1
        p.figures.update({"licensed_share_1_host": round(one, 3),
                          "licensed_share_2_hosts": round(two, 3)})  # fmt: skip
        p.reasons.append(
            f"{n} machines is a small site: with one host, {one:.0%} are licensed after "
            f"{PLAN_DAYS} days in the simulation; with two, each host counts only part of "
            f"them and {two:.0%} are (a host activates desktops once it counts 25)."
        )
        if one < 1:
            p.reasons.append(
                "Even one host does not reach the threshold here: activate these machines "
                "with a MAK instead (volact mak)."
            )
        return p
    sample = min(n, SAMPLE)
    hosts = 2
    for _ in range(8):
        r = Simulation(_fleet(sample, hosts, office=True, latency=min(site.latency_s, 1.0),
                              days=14), cost_us=cost).run()  # fmt: skip
        peak = max(max(h) for h in r.hourly) * n / sample
        cpu = peak * cost / 1e6 / 3600
        if cpu <= CPU_BUDGET:
            break
        hosts += 1
    p.hosts = hosts
    p.figures.update({
        "peak_requests_per_hour_per_host": round(peak),
        "peak_cpu_share_of_one_core": round(cpu, 5),
        "simulated_clients": sample,
    })  # fmt: skip
    p.reasons.append(
        f"{n:,} machines: at least two hosts, so that machines fail over to the other "
        "when one is down (each host still counts far more than 25)."
    )
    p.reasons.append(
        f"The busiest hour of a rollout in which every machine installs its key on one "
        f"office day, simulated, gives about {peak:,.0f} requests per hour per host: "
        f"{cpu:.2%} of one core at {cost:.0f} µs per exchange (budget {CPU_BUDGET:.0%})."
    )
    if hosts > 2:
        p.reasons.append(f"{hosts} hosts keep that peak within the budget.")
    p.reasons.append(
        "Start every host on the same day: a host added later gets no clients while the "
        "others answer (host caching)."
    )
    return p


def plan(sites: list[Site], *, cost_us: float | None = None) -> dict[str, Any]:
    """Recommendations for every site, and a sentence for the whole organisation."""
    if not sites:
        raise UsageError("give --clients N or --sites NAME=CLIENTS ...")
    plans = [plan_site(s, cost_us=cost_us) for s in sites]
    total = sum(p.hosts for p in plans)
    return {
        "clients": sum(s.clients for s in sites),
        "hosts": total,
        "sites": [p.to_json() for p in plans],
        "summary": (
            f"{total} host{'s' if total != 1 else ''} for "
            f"{sum(s.clients for s in sites):,} machines at {len(sites)} "
            f"site{'s' if len(sites) != 1 else ''}."
        ),
    }


__all__ = ["Site", "SitePlan", "plan", "plan_site"]
