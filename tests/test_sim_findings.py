"""The case study's findings, reproduced by the simulator on small fleets (issue 14, item 4).

Each test runs volact's own host and client cores in simulated time; the numbers
come out of their decisions, not out of the simulator.
"""

from __future__ import annotations

import pytest

from volact.errors import ConfigurationError
from volact.sim import Action, HostSpec, Population, Scenario, Simulation
from volact.sim.engine import SimResult

DAY_HOURS = 24


def run(
    hosts: tuple[HostSpec, ...],
    pops: tuple[Population, ...],
    days: float,
    actions: tuple[Action, ...] = (),
    seed: int = 1,
) -> SimResult:
    sc = Scenario("test", days, hosts, pops, actions, seed=seed)
    return Simulation(sc, cost_us=80.0).run()


def licensed_at_any_time(r: SimResult) -> int:
    return max(r.by_state["licensed"])


def test_two_hosts_and_40_desktops_activate_nobody_one_host_activates_all() -> None:
    desktops = (Population("desktops", 40),)
    two = run((HostSpec("a", weight=1), HostSpec("b", weight=1)), desktops, 31)
    assert licensed_at_any_time(two) == 0
    assert two.by_state["notification"][-1] == 40  # grace ran out on day 30
    assert all(0 < c < 25 for c in (two.host_count[0][-1], two.host_count[1][-1]))
    assert two.results == {"count_too_low": two.exchanges}  # every answer said so

    one = run((HostSpec("a"),), desktops, 31)
    assert one.by_state["licensed"][-1] == 40
    assert one.host_count[0][-1] == 40


def requests_between(r: SimResult, first_day: int, last_day: int) -> int:
    return sum(sum(h[first_day * DAY_HOURS : last_day * DAY_HOURS]) for h in r.hourly)


def test_a_15_minute_renewal_interval_multiplies_host_load_by_the_interval_ratio() -> None:
    desktops = (Population("desktops", 30),)
    fast = run((HostSpec("a", renewal_interval=15),), desktops, 8)
    slow = run((HostSpec("a"),), desktops, 8)
    # From day 1 every machine is licensed and only renews: 7 days of renewals.
    ratio = requests_between(fast, 1, 8) / requests_between(slow, 1, 8)
    assert ratio == pytest.approx(10080 / 15, rel=0.05)  # 672: 96 a day against 1 a week
    # The case study's 1-minute interval would be 15 times more again (10,080, "about
    # 10,000"); volact refuses intervals under 15 minutes, in hosts and in scenarios.
    with pytest.raises(ConfigurationError, match="15"):
        Scenario("x", 1, (HostSpec("a", renewal_interval=1),), desktops)


def test_a_host_added_later_gets_no_clients_while_the_old_ones_answer() -> None:
    hosts = (HostSpec("old-1", weight=1), HostSpec("old-2", weight=1), HostSpec("new", 10))
    r = run(hosts, (Population("desktops", 200),), 30)
    assert r.by_state["licensed"][-1] == 200
    assert r.host_clients[2][-1] == 0
    assert sum(r.hourly[2]) == 0  # not one request, through three rounds of renewals
    assert r.host_clients[0][-1] + r.host_clients[1][-1] == 200


@pytest.mark.parametrize(("block_days", "moved"), [(3, "part"), (7, "all")])
def test_blocking_the_old_hosts_port_moves_part_of_the_clients_below_7_days_all_from_7(
    block_days: int, moved: str
) -> None:
    hosts = (HostSpec("old", weight=1), HostSpec("new", 10, weight=1))
    # Renewals spread over the week: machines arrived over seven days.
    pops = (Population("desktops", 140, ramp_days=7),)
    r = run(hosts, pops, 24, (Action(14, "block_port", host="old", days=block_days),))
    old, new = r.host_clients[0][-1], r.host_clients[1][-1]
    assert old + new == 140
    assert r.by_state["licensed"][-1] == 140  # nobody lost a license on the way
    if moved == "all":
        assert (old, new) == (0, 140)
    else:
        # About 3/7 of the machines renew during a 3-day block.
        assert 0.25 * 140 < new < 0.6 * 140
        assert old > 0


def test_a_slow_link_changes_nothing_for_activation() -> None:
    host = (HostSpec("a"),)
    fast = run(host, (Population("lan", 60),), 10)
    slow = run(host, (Population("vpn", 60, latency_s=3.0, loss=0.05),), 10)
    assert fast.by_state["licensed"] == slow.by_state["licensed"]
    assert slow.by_state["licensed"][-1] == 60
    # Beyond the client's exchange timeout (5 s) nothing completes, and it shows.
    cut = run(host, (Population("satellite", 60, latency_s=6.0),), 10)
    assert licensed_at_any_time(cut) == 0
    assert cut.failed > 0 and cut.exchanges == 0
