"""The fleet simulator's rebalance: the real host core decides whom to ask, the
real client planner moves them, and the comparison with the case study's port block."""

from __future__ import annotations

import uuid

import pytest

from volact.documents import ActivationTicket
from volact.errors import ConfigurationError
from volact.host.policy import HostCore
from volact.host.rebalance import Rebalance, selects, share_from_percent
from volact.sim import Action, HostSpec, Population, Scenario, Simulation, parse_scenario
from volact.sim.moves import WAYS, days_until_balanced, fleet, summary
from volact.sim.report import summary as summary_json
from volact.sim.scenario import DEFAULT_DOMAIN
from volact.wire import (
    PROTOCOL_VERSION_MOVE,
    ActivateReply,
    ActivateRequest,
    LicenseState,
    decode,
    encode,
)

N = 200


def _one_old_one_new(share: float, *, days: float = 24, stop: float = 0) -> Scenario:
    # Host "a" serves everyone; "b" is added on day 8 (below its threshold at first:
    # the first movers hear "count too low" there and must stay licensed with "a").
    hosts = (HostSpec("a"), HostSpec("b", start_day=8))
    pops = (Population("desktops", N, ramp_days=7, vm_share=0.1),)
    return Scenario(
        "move", days, hosts, pops, (Action(10, "rebalance", "a", days=stop, share=share),)
    )


def test_rebalance_moves_exactly_the_machines_selects_chooses_and_nobody_loses_a_license() -> None:
    sim = Simulation(_one_old_one_new(40), cost_us=80.0)
    r = sim.run()
    a, b = sim.hosts
    chosen = {c for c in range(N) if selects(sim.c_cmid[c], a.host_id, 4000)}
    assert a.told == chosen  # every one of a's clients renewed within the week
    assert 0.25 * N < len(chosen) < 0.55 * N  # about the share (40 %)
    assert r.clients_told == len(chosen) and r.moves_told >= len(chosen)
    # Each chosen machine moved to b, nobody else did.
    on_b = {c for c in range(N) if sim.c_cached[c] == b.i}
    assert on_b == chosen
    assert (r.host_clients[0][-1], r.host_clients[1][-1]) == (N - len(chosen), len(chosen))
    # Nobody fell out of licensed state, no attempt failed, nothing timed out.
    first = r.by_state["licensed"].index(N)
    assert all(n == N for n in r.by_state["licensed"][first:])
    assert r.clients_failed_attempt == 0 and r.clients_failed_exchange == 0 and r.failed == 0
    # b was below its threshold for the first movers: they heard "count too low".
    assert sum(r.refused_daily[10:]) > 0
    s = summary_json(r)
    assert (s["clients_told_to_move"], s["clients_with_failed_attempt"]) == (len(chosen), 0)


def test_stopping_a_rebalance_half_way_keeps_the_machines_already_moved() -> None:
    sim = Simulation(_one_old_one_new(100, stop=1.5), cost_us=80.0)
    r = sim.run()
    a, b = sim.hosts
    moved = r.host_clients[1][-1]
    assert 0 < moved < N  # only the machines that renewed during those 1.5 days
    assert {c for c in range(N) if sim.c_cached[c] == b.i} <= a.told
    assert r.by_state["licensed"][-1] == N and r.clients_failed_attempt == 0


def test_rebalance_decisions_replay_into_fresh_host_cores() -> None:
    sim = Simulation(_one_old_one_new(40, days=16), cost_us=80.0, trace=True)
    r = sim.run()
    assert sim.trace is not None and r.shortcut_decisions > 0
    fresh = {
        h.name: HostCore(
            config=h.core.config, catalog=sim.catalog, signing_key=h.real_key,
            host_license=h.license, vendor_public_key=sim.vendor.public_key,
        )
        for h in sim.hosts
    }  # fmt: skip
    since = sim.t0 + 10 * 86400
    moved = 0
    for i, d in enumerate(sim.trace):
        core = fresh[d.host]
        if d.host == "a" and d.now >= since:
            core.rebalance = Rebalance(share_from_percent(40), since)
        req = ActivateRequest(
            uuid.UUID(bytes=d.sku), uuid.UUID(bytes=d.cmid), i.to_bytes(16, "big"), d.now,
            LicenseState(d.state), d.minutes_left, d.vm, "sim", PROTOCOL_VERSION_MOVE,
        )  # fmt: skip
        reply = decode(core.decide_frame(encode(req), now=d.now).frame)
        assert isinstance(reply, ActivateReply) and reply.result == d.result, f"{i}: {d}"
        if reply.ticket is not None:
            ticket = ActivationTicket.decode(reply.ticket)[0]
            assert bool(ticket.move) is d.moved, f"{i}: {d}"
            moved += d.moved
    assert moved == r.moves_told > 0


def test_port_block_3_days_moves_part_with_failures_rebalance_moves_the_share_without() -> None:
    n = 400
    rows = {}
    for way in WAYS:
        if (way.kind == "block" and way.days == 3) or (way.kind == "rebalance" and way.share == 50):
            sc = fleet(way, clients=n, add_day=21, days=42, ramp_days=7)
            r = Simulation(sc, cost_us=80.0).run()
            rows[way.kind] = (summary(way, r, add_day=21), r)
    block, rb = rows["block"][0], rows["rebalance"][0]
    # The block moves part of kms-1's clients (those renewing in 3 of 7 days), none of kms-2's.
    assert 0 < block["final_shares"][2] < 25 and block["days_until_balanced"] is None
    assert block["clients_failed_exchange"] > 0.2 * n / 2
    # The rebalance moves the share and balances, and nobody waited on a dead host.
    assert rb["days_until_balanced"] is not None and rb["days_until_balanced"] <= 14
    assert rb["clients_failed_exchange"] == 0 and rb["clients_failed_attempt"] == 0
    assert rb["clients_told"] > 0.3 * n
    for row in (block, rb):
        assert row["min_licensed_after_add"] == n
    assert days_until_balanced(rows["rebalance"][1], 21) == rb["days_until_balanced"]


def test_a_rebalance_action_is_parsed_and_checked() -> None:
    sc = parse_scenario(
        "[[hosts]]\nname='a'\n[[clients]]\nname='c'\n"
        "[[actions]]\nday=1\naction='rebalance'\nhost='a'\nshare=25\ndays=3\n"
    )
    assert sc.actions[0].share == 25 and sc.actions[0].days == 3
    with pytest.raises(ConfigurationError, match="share"):
        parse_scenario(
            "[[hosts]]\nname='a'\n[[clients]]\nname='c'\n"
            "[[actions]]\nday=1\naction='rebalance'\nhost='a'\nshare=0\n"
        )


def test_a_drain_empties_the_host_within_a_renewal_interval_and_withdraws_its_record() -> None:
    sim = Simulation(_one_old_one_new(100, days=19), cost_us=80.0)
    r = sim.run()
    a, b = sim.hosts
    assert a.told == set(range(N))
    assert (r.host_clients[0][-1], r.host_clients[1][-1]) == (0, N)
    records = sim._srv(DEFAULT_DOMAIN, sim.t0 + 12 * 86400)
    assert [rec.target for rec in records] == [b.address.host]
    assert r.by_state["licensed"][-1] == N and r.clients_failed_attempt == 0
