"""Adding a host to a running fleet: rebalance against the case study's port block.

The case study's only way to give a host added later any clients was to block
the old host's port for a few days (fewer than the 7-day renewal interval) and
watch. volact's way is ``volact host rebalance --share`` (SPEC §9). This module
builds the same fleet for each way (two hosts, a third added on ``add_day``), and
measures what an administrator cares about: how many days until the hosts are
balanced, how many clients spent time in failed attempts, how many requests were
refused, and whether anyone fell out of licensed state. ``bench/rebalance_vs_block.py``
prints the table and draws the plot of ``docs/operations.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from volact.sim.engine import SimResult
from volact.sim.scenario import Action, HostSpec, Population, Scenario

#: A host is balanced when its share of the clients is within this many percentage
#: points of its fair share (1 / the number of hosts).
TOLERANCE_PP = 5.0

OLD = ("kms-1", "kms-2")
NEW = "kms-3"


@dataclass(frozen=True)
class Way:
    """One way to bring the new host its clients."""

    name: str  #: shown in the table
    kind: str  #: "none", "block" or "rebalance"
    days: float = 0.0  #: block: how long the port is blocked
    share: float = 0.0  #: rebalance: percent asked to move on each old host


WAYS = (
    Way("nothing (add the host only)", "none"),
    Way("port block on kms-1, 3 days", "block", days=3),
    Way("port block on kms-1, 7 days", "block", days=7),
    Way("rebalance --share 33 on both old hosts", "rebalance", share=33),
    Way("rebalance --share 50 on both old hosts", "rebalance", share=50),
)


def fleet(way: Way, *, clients: int = 30_000, add_day: float = 30, days: float = 65,
          ramp_days: float = 14, seed: int = 1) -> Scenario:  # fmt: skip
    """``clients`` office desktops arriving over ``ramp_days`` on two hosts, a third
    host added (and published with the same SRV weight) on ``add_day``, then ``way``."""
    hosts = (
        HostSpec(OLD[0]),
        HostSpec(OLD[1]),
        HostSpec(NEW, start_day=add_day),
    )
    pops = (Population("desktops", clients, ramp_days=ramp_days, hours="office", vm_share=0.1),)
    actions: tuple[Action, ...] = ()
    if way.kind == "block":
        actions = (Action(add_day, "block_port", host=OLD[0], days=way.days),)
    elif way.kind == "rebalance":
        actions = tuple(Action(add_day, "rebalance", host=h, share=way.share) for h in OLD)
    return Scenario(
        name=f"add a host: {way.name}",
        description=(
            f"{clients} desktops on two hosts; a third host on day {add_day:g}; {way.name}."
        ),
        days=days,
        hosts=hosts,
        populations=pops,
        actions=actions,
        seed=seed,
    )


def shares(r: SimResult, sample: int) -> list[float]:
    """Each host's share of the machines that cache a host, in percent, at a sample."""
    counts = [hc[sample] for hc in r.host_clients]
    total = sum(counts)
    return [100.0 * n / total if total else 0.0 for n in counts]


def balanced(r: SimResult, sample: int, *, tolerance: float = TOLERANCE_PP) -> bool:
    """Every running host within ``tolerance`` points of its fair share."""
    s = shares(r, sample)
    fair = 100.0 / len(s)
    return all(abs(x - fair) <= tolerance for x in s)


def days_until_balanced(r: SimResult, from_day: float) -> float | None:
    """Days from ``from_day`` to the first daily sample that is balanced (None: never
    within the run)."""
    for i, d in enumerate(r.days):
        if d >= from_day and balanced(r, i):
            return d - from_day
    return None


def summary(way: Way, r: SimResult, *, add_day: float) -> dict[str, Any]:
    """The table row of one way."""
    start = next(i for i, d in enumerate(r.days) if d >= add_day)
    licensed = r.by_state["licensed"]
    total = len(r.scenario.populations) and sum(p.count for p in r.scenario.populations)
    refused = sum(r.refused_daily[int(add_day):])
    return {
        "way": way.name,
        "days_until_balanced": days_until_balanced(r, add_day),
        "final_shares": [round(x, 1) for x in shares(r, len(r.days) - 1)],
        "clients_failed_exchange": r.clients_failed_exchange,
        "clients_failed_attempt": r.clients_failed_attempt,
        "connections_refused": r.failed,
        "replies_refused_after_add": refused,
        "clients_told": r.clients_told,
        "min_licensed_after_add": min(licensed[start:]),
        "clients": total,
    }


__all__ = [
    "NEW",
    "OLD",
    "TOLERANCE_PP",
    "WAYS",
    "Way",
    "balanced",
    "days_until_balanced",
    "fleet",
    "shares",
    "summary",
]
