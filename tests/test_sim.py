"""The simulator: its host decisions equal the real HostCore's, scenarios, plan, CLI, report."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import uuid
from pathlib import Path

import pytest

from volact.cli import main
from volact.errors import ConfigurationError, UsageError
from volact.host.policy import HostCore
from volact.sim import (
    Action,
    HostSpec,
    Population,
    Scenario,
    Simulation,
    case_study,
    parse_scenario,
    simple_fleet,
)
from volact.sim.plan import Site, plan_site
from volact.wire import ActivateRequest, LicenseState, Result, decode, encode

DOCS = Path(__file__).resolve().parent.parent / "docs" / "simulator.md"


def test_the_simulators_host_decisions_equal_a_real_hostcore_fed_the_same_requests() -> None:
    """Replay every decision the simulator made into fresh HostCores with real keys.

    The scenario goes through what makes decisions differ: a threshold reached while
    machines wait, two SKU groups, virtual machines on a host that leaves them out
    of its count, an outage that moves machines, machines that leave the count.
    """
    sc = Scenario(
        "equality",
        40,
        (
            HostSpec("a", weight=1, count_vms=False),
            HostSpec("b", weight=1, outages=((9.0, 2.0),)),
        ),
        (
            Population("desktops", 60, ramp_days=2, vm_share=0.4),
            Population("servers", 8, sku_group="server", arrive_day=3, ramp_days=1),
            Population("late", 30, arrive_day=5, ramp_days=0.5, vm_share=1.0, leave_day=6),
        ),
    )
    sim = Simulation(sc, cost_us=80.0, trace=True)
    r = sim.run()
    trace = sim.trace
    assert trace is not None and len(trace) == r.full_decisions + r.shortcut_decisions
    assert r.shortcut_decisions > 0 and r.full_decisions > 0
    fresh = {
        h.name: HostCore(
            config=h.core.config,
            catalog=sim.catalog,
            signing_key=h.real_key,
            host_license=h.license,
            vendor_public_key=sim.vendor.public_key,
        )
        for h in sim.hosts
    }
    seen = set()
    for i, d in enumerate(trace):
        req = ActivateRequest(
            uuid.UUID(bytes=d.sku), uuid.UUID(bytes=d.cmid), i.to_bytes(16, "big"), d.now,
            LicenseState(d.state), d.minutes_left, d.vm, "sim",
        )  # fmt: skip
        reply = decode(fresh[d.host].decide_frame(encode(req), now=d.now).frame)
        assert reply.result == d.result, f"decision {i}: {d}"  # type: ignore[union-attr]
        seen.add(Result(d.result))
    assert {Result.OK, Result.COUNT_TOO_LOW} <= seen
    for h in sim.hosts:
        assert fresh[h.name].count(sim.t0 + 40 * 86400) == h.core.count(sim.t0 + 40 * 86400)


def test_sharing_planner_trees_changes_nothing_but_the_number_of_paths() -> None:
    """Cohorts that differ only in host licenses their planner does not look at, or
    in populations that look alike, share planner trees: the run must not change.

    Host ``b`` starts late with a 15-minute renewal interval: its first machines
    hear "count too low" (it is their cached host, its license unknown to them) and
    retry in the ticks when the machines it licensed renew. Machines of ``c`` learn
    other hosts' licenses when it stops; ``early`` and ``late`` look alike, ``office``
    differs from them only in its hours; ``b`` has an outage; ``a`` rebalances.
    """
    sc = Scenario(
        "sharing",
        14,
        (
            HostSpec("a", weight=100),
            HostSpec("b", 1, weight=100, renewal_interval=15, outages=((5.0, 1.5),)),
            HostSpec("c", weight=50, stop_day=7),
            HostSpec("d", 4, weight=100, family="ipv6"),
        ),
        (
            Population("early", 150, ramp_days=2, vm_share=0.2),
            Population("late", 150, arrive_day=3, ramp_days=2, vm_share=0.2),
            Population("old", 60, arrive_day=1, ramp_days=1, family="ipv4"),
            Population("servers", 20, sku_group="server", ramp_days=1),
            Population("office", 60, arrive_day=1, ramp_days=1, hours="office"),
        ),
        (
            Action(4, "set_intervals", "b", renewal_interval=10080),
            Action(9, "rebalance", "a", days=3, share=30),
        ),
    )
    shared = Simulation(sc, cost_us=80.0, trace=True)
    alone = Simulation(sc, cost_us=80.0, trace=True, share_trees=False)
    a, b = shared.run(), alone.run()
    assert a.distinct_paths < b.distinct_paths
    for f in dataclasses.fields(a):
        if f.name not in ("distinct_paths", "wall_s"):
            assert getattr(a, f.name) == getattr(b, f.name), f.name
    assert shared.trace == alone.trace
    assert a.moves_told > 0 and a.failed > 0 and a.by_state["licensed"][-1] == 440
    assert len({m for m in shared.c_known}) > len(shared.hosts)  # several known sets


def test_the_simulator_loads_no_io_and_host_and_client_never_import_it() -> None:
    import subprocess

    probe = (
        "import sys, volact.sim.engine, volact.sim.plan\n"
        "bad = ('socket', 'asyncio', 'sqlite3', 'httpx', 'volact.host.store', "
        "'volact.client.store', 'matplotlib')\n"
        "print(','.join(m for m in bad if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert out == ""


def test_same_seed_same_run_and_every_machine_is_somewhere() -> None:
    sc = simple_fleet(clients=300, hosts=3, days=20, seed=7)
    a = Simulation(sc, cost_us=80.0).run()
    b = Simulation(sc, cost_us=80.0).run()
    assert a.hourly == b.hourly and a.by_state == b.by_state
    for i in range(len(a.days)):
        assert sum(a.by_state[s][i] for s in a.by_state) == (300 if i else 0)
    assert sum(c[-1] for c in a.host_clients) == 300
    # SRV weights 100/100/100: each host gets a fair share of new machines.
    assert all(60 < c[-1] < 140 for c in a.host_clients)


def test_srv_weights_and_priorities_steer_new_machines() -> None:
    hosts = (
        HostSpec("big", weight=300),
        HostSpec("small", weight=100),
        HostSpec("backup", priority=10, weight=100),
    )
    r = Simulation(Scenario("w", 3, hosts, (Population("d", 400),)), cost_us=80.0).run()
    big, small, backup = (c[-1] for c in r.host_clients)
    assert backup == 0
    assert 2 * small < big  # about 3:1
    assert big + small == 400


def test_an_ipv6_only_host_serves_dual_stack_machines_and_ipv4_machines_fail_over() -> None:
    hosts = (HostSpec("v6", family="ipv6", weight=1), HostSpec("v4", family="ipv4", weight=1))
    pops = (Population("dual", 100), Population("old", 100, family="ipv4"))
    r = Simulation(Scenario("v6", 3, hosts, pops), cost_us=80.0).run()
    assert r.by_state["licensed"][-1] == 200
    assert r.failed > 0  # IPv4-only machines that drew the IPv6 host first
    assert 0 < r.host_clients[0][-1] < 100


def test_unreachable_share_activates_after_the_firewall_is_fixed() -> None:
    from volact.sim import Unreachable

    pops = (Population("forest", 50, unreachable=Unreachable(1.0, 5)),)
    r = Simulation(Scenario("fw", 8, (HostSpec("a"),), pops), cost_us=80.0).run()
    assert r.by_state["licensed"][4] == 0
    assert r.by_state["licensed"][-1] == 50


def test_case_study_scenario_keeps_the_case_studys_numbers() -> None:
    sc = case_study()
    assert sc.clients - 100 == 90_000  # the lab's 100 leave after three weeks
    running = {h.name for h in sc.hosts if h.start_day <= 150 < (h.stop_day or 1e9)}
    assert {"core-1", "core-2", "core-3", "core-4", "core-5"} <= running
    assert any(h.family == "ipv6" for h in sc.hosts)
    assert sc.notes


def test_toml_example_in_the_docs_parses_and_runs() -> None:
    text = DOCS.read_text()
    block = re.search(r"```toml\n(.*?)```", text, re.S)
    assert block is not None
    sc = parse_scenario(block.group(1), source="docs example")
    assert len(sc.hosts) >= 2 and sc.actions
    r = Simulation(sc.with_overrides(days=3), cost_us=80.0).run()
    assert r.exchanges > 0


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[simulation]\ndays = 'x'", "days must be float"),
        ("[simulation]\nbogus = 1\n[[hosts]]\nname='a'\n[[clients]]\nname='c'", "bogus"),
        ("[[hosts]]\nname='a b'\n[[clients]]\nname='c'\ncount=1", "one DNS label"),
        ("[[hosts]]\nname='a'\nrenewal_interval=1\n[[clients]]\nname='c'", "15..43200"),
        ("[[hosts]]\nname='a'\n[[clients]]\nname='c'\nvm_share=2", "vm_share"),
        ("[[hosts]]\nname='a'\n[[clients]]\nname='c'\n[[actions]]\nday=1\naction='x'",
         "unknown action"),
        ("[[hosts]]\nname='a'\n[[clients]]\nname='c'\n[[actions]]\nday=1\n"
         "action='block_port'\nhost='zz'\ndays=1", "no defined host"),
        ("[[hosts]]\nname='a'\n[[clients]]\nname=\"c\\u001b[31m\"", "printable"),
        ("[[hosts", "not valid TOML"),
        ("[[clients]]\nname='c'", "at least one host"),
    ],
)  # fmt: skip
def test_bad_scenarios_are_clear_errors(toml: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        parse_scenario(toml)


def test_plan_one_host_for_a_small_site_two_or_more_for_a_large_one() -> None:
    small = plan_site(Site("lab", 40), cost_us=80.0)
    assert small.hosts == 1
    assert small.figures["licensed_share_1_host"] == 1.0
    assert small.figures["licensed_share_2_hosts"] < 1.0
    big = plan_site(Site("hq", 20_000), cost_us=80.0)
    assert big.hosts >= 2
    assert big.figures["peak_requests_per_hour_per_host"] > 0
    assert any("two hosts" in why for why in big.reasons)
    with pytest.raises(UsageError):
        Site.parse("hq")


def test_cli_simulate_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--clients", "30", "--hosts", "1", "--days", "3", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["clients"] == 30 and s["days"] == 3
    assert s["by_state"]["licensed"] == 30
    (h,) = s["hosts"]
    assert {"name", "clients", "count", "requests", "peak_requests_per_hour"} <= set(h)
    assert h["clients"] == 30 and h["count"] == 30
    assert s["plots"] == [] and s["wall_s"] >= 0
    assert any("stand-in" in n for n in s["notes"])


def test_cli_simulate_writes_plots_and_a_self_contained_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[simulation]\nname = "<b>x</b>"\ndays = 4\n'
        '[[hosts]]\nname = "kms-1"\n[[clients]]\nname = "<script>"\ncount = 30\n'
    )
    out = tmp_path / "out"
    assert main(["simulate", "--scenario", str(toml), "--out", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    for name in s["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(s["plots"]) == 5
    assert "<script>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def test_cli_simulate_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--scenario", "nope"]) == 2
    assert "built-in" in capsys.readouterr().err
    assert main(["simulate"]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe")
    assert main(["simulate", "--scenario", str(bad)]) == 1
    assert "UTF-8" in capsys.readouterr().err
    assert main(["simulate", "--clients", "5", "--days", "0"]) == 2


def test_cli_simulate_without_matplotlib_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["simulate", "--clients", "5", "--days", "1", "--out", str(tmp_path)]) == 1
    assert "volact[sim]" in capsys.readouterr().err


def test_cli_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--clients", "60", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["hosts"] == 1 and p["sites"][0]["reasons"]
    assert main(["plan", "--sites", "hq=oops"]) == 2
