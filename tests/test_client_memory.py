"""Clients and hosts wired together in memory (no sockets), the clock moved by hand."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path

from client_support import CATALOG, DAY, SERVER, T0, VENDOR, Clock, Network, fill
from volact.client.srv import SrvRecord
from volact.documents import ActivationTicket, HostLicense
from volact.signing import SigningKey
from volact.testing.hosts import make_test_host
from volact.wire import ActivateReply, Result, decode, encode

DOMAIN = "corp.example"
SRV_NAME = f"_volact._tcp.{DOMAIN}"


def one_host_network(**host_kw: object) -> tuple[Network, Clock]:
    clock = Clock()
    net = Network(clock)
    addr = net.add_host("kms1.corp.example", make_test_host(VENDOR, CATALOG, **host_kw))  # type: ignore[arg-type]
    net.srv[SRV_NAME] = [SrvRecord(0, 0, addr.port, addr.host)]
    return net, clock


def test_24_machines_stay_in_grace_and_the_25th_activates(tmp_path: Path) -> None:
    net, clock = one_host_network()
    acts = []
    for i in range(1, 26):
        act = net.activation(tmp_path / f"m{i}")
        act.set_domain(DOMAIN)
        st = act.activate()
        acts.append(act)
        if i < 25:
            assert (st.state, st.activated, st.result) == ("grace", False, "count_too_low")
            assert (st.count, st.required_count) == (i, 25)
            assert st.next_action_at == int(clock()) + 120 * 60
        else:
            assert (st.state, st.activated, st.result) == ("licensed", True, "ok")
            assert (st.count, st.required_count) == (25, 25)
            assert st.valid_until == int(clock()) + 180 * DAY
            assert st.next_action_at == int(clock()) + 7 * DAY
        clock.advance(1)
    # The first 24 retry at their activation interval and now get in.
    clock.advance(120 * 60)
    st, acted = acts[0].tick()
    assert acted and st.activated and st.count == 25
    kinds = [e["event"] for e in acts[0].events()]
    assert kinds.count("request_sent") == 2 and kinds.count("reply_processed") == 2
    sent = next(e for e in acts[0].events() if e["event"] == "request_sent")
    assert sent["state"] == "grace" and sent["minutes_left"] == 30 * 24 * 60
    assert sent["host"] == "kms1.corp.example:1688" and sent["cmid"] == st.cmid


def test_a_licensed_machine_renews_after_7_days(tmp_path: Path) -> None:
    net, clock = one_host_network()
    core = net.core(next(iter(net.hosts)))
    fill(core, 4, T0)
    act = net.activation(tmp_path / "m", sku=SERVER.name)
    act.set_domain(DOMAIN)
    assert act.activate().activated
    clock.advance(7 * DAY - 60)
    st, acted = act.tick()
    assert not acted and st.next_action_at == T0 + 7 * DAY
    clock.advance(60)
    fill(core, 4, int(clock()))
    st, acted = act.tick()
    assert acted and st.activated and st.result == "ok"
    assert st.valid_until == T0 + 7 * DAY + 180 * DAY
    assert st.next_action_at == T0 + 14 * DAY
    # The host's license was fetched once, on first contact only.
    assert sum(1 for e in act.events() if e["event"] == "request_sent") == 2


def test_host_gone_falls_back_to_retries_and_notification_at_day_180(tmp_path: Path) -> None:
    net, clock = one_host_network(activation_interval=24 * 60)
    addr = next(iter(net.hosts))
    fill(net.core(addr), 4, T0)
    act = net.activation(tmp_path / "m", sku=SERVER.name)
    act.set_domain(DOMAIN)
    assert act.activate().activated
    net.down.add(addr)

    def sleep(seconds: float) -> bool:
        clock.advance(seconds)
        return False

    seen: list[tuple[int, str, bool]] = []
    act.run_schedule(
        max_steps=200, sleep=sleep, max_sleep=30 * DAY,
        on_step=lambda st, acted: seen.append((st.now, st.state, acted)),
    )  # fmt: skip
    attempts = [t for t, _, acted in seen if acted]
    # First renewal at day 7, then a retry every day (the host's activation interval).
    assert attempts[0] == T0 + 7 * DAY
    assert all(b - a == DAY for a, b in itertools.pairwise(attempts))
    states = {t: s for t, s, _ in seen}
    assert all(s == "licensed" for t, s in states.items() if t < T0 + 180 * DAY)
    assert states[T0 + 180 * DAY] == "notification"  # the scheduler woke for the change
    st = act.status()
    assert st.state == "notification" and "did not answer" in (st.last_error or "")
    assert st.valid_until == T0 + 180 * DAY  # failures never moved it


def test_host_intervals_replace_the_clients(tmp_path: Path) -> None:
    net, _clock = one_host_network(activation_interval=30, renewal_interval=600)
    act = net.activation(tmp_path / "m")
    act.set_domain(DOMAIN)
    before = act.status()
    assert (before.activation_interval, before.renewal_interval) == (120, 7 * 24 * 60)
    st = act.activate()
    assert st.result == "count_too_low"
    # Unsigned: a shorter retry is taken, the renewal interval is not.
    assert (st.activation_interval, st.renewal_interval) == (30, 7 * 24 * 60)
    assert st.next_action_at == T0 + 30 * 60
    # The signed ticket's intervals are taken as they are.
    fill(net.core(next(iter(net.hosts))), 30, T0)
    _clock.advance(30 * 60)
    st = act.activate()
    assert st.activated and (st.activation_interval, st.renewal_interval) == (30, 600)


def test_a_forged_count_too_low_cannot_delay_the_client(tmp_path: Path) -> None:
    """Refusals are unsigned: one saying "retry in 30 days" must not burn the grace."""
    net, _ = one_host_network()
    addr = next(iter(net.hosts))
    forged = encode(
        ActivateReply(Result.COUNT_TOO_LOW, 1, 25, 30 * 24 * 60, 30 * 24 * 60, bytes(8))
    )
    net.hosts[addr] = lambda frame: forged
    act = net.activation(tmp_path / "m")
    act.set_domain(DOMAIN)
    st = act.activate()
    assert st.result == "count_too_low" and st.count == 1
    assert (st.activation_interval, st.renewal_interval) == (120, 7 * 24 * 60)
    assert st.next_action_at == T0 + 120 * 60
    assert act.status().cached_host == str(addr)  # counts are per host: the host is kept


def test_caching_on_sticks_to_the_host(tmp_path: Path) -> None:
    clock = Clock()
    net = Network(clock)
    a = net.add_host("a.corp.example")
    b = net.add_host("b.corp.example")
    net.srv[SRV_NAME] = [SrvRecord(0, 10, 1688, a.host), SrvRecord(0, 20, 1688, b.host)]
    act = net.activation(tmp_path / "m")
    act.set_domain(DOMAIN)
    first = act.activate().host
    for _ in range(30):
        clock.advance(120 * 60)
        assert act.activate().host == first
    assert sum(1 for k, _ in net.log if k == "srv") == 1  # DNS read once
    # When the cached host stops answering, the client re-discovers and moves on.
    net.down.add(a if first == str(a) else b)
    moved = act.activate()
    assert moved.host != first and moved.host in (str(a), str(b))
    assert sum(1 for k, _ in net.log if k == "srv") == 2


def test_caching_off_follows_dns_weights(tmp_path: Path) -> None:
    clock = Clock()
    net = Network(clock)
    a = net.add_host("a.corp.example")
    b = net.add_host("b.corp.example")
    net.srv[SRV_NAME] = [SrvRecord(0, 10, 1688, a.host), SrvRecord(0, 20, 1688, b.host)]
    act = net.activation(tmp_path / "m", seed=7)
    act.set_domain(DOMAIN)
    act.set_host_caching(False)
    hosts = Counter(act.activate().host for _ in range(300))
    assert sum(1 for k, _ in net.log if k == "srv") == 300  # DNS read every time
    # Expected 100/200; 4 standard deviations of a binomial(300, 1/3) is about 33.
    assert abs(hosts[str(a)] - 100) < 33 and hosts[str(a)] + hosts[str(b)] == 300
    assert act.status().cached_host is None


def test_search_domains_used_when_no_domain_is_set(tmp_path: Path) -> None:
    net, _ = one_host_network()
    act = net.activation(tmp_path / "m", search_domains=["nothing.example", DOMAIN])
    assert act.activate().result == "count_too_low"
    assert [n for k, n in net.log if k == "srv"] == [
        "_volact._tcp.nothing.example",
        SRV_NAME,
    ]


def test_failover_from_a_dead_host_to_a_live_one(tmp_path: Path) -> None:
    clock = Clock()
    net = Network(clock)
    dead = net.add_host("dead.corp.example")
    live = net.add_host("live.corp.example")
    net.down.add(dead)
    net.srv[SRV_NAME] = [SrvRecord(0, 0, 1688, dead.host), SrvRecord(5, 0, 1688, live.host)]
    act = net.activation(tmp_path / "m")
    act.set_domain(DOMAIN)
    st = act.activate()
    assert st.host == str(live) and st.result == "count_too_low"
    failed = [e for e in act.events() if e["event"] == "host_failed"]
    assert failed and failed[0]["host"] == str(dead)


def _licensed(tmp_path: Path, net: Network) -> tuple[object, object]:
    act = net.activation(tmp_path / "m", sku=SERVER.name)
    act.set_domain(DOMAIN)
    return act, act.activate()


def test_a_forged_reply_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    clock = Clock()
    net = Network(clock)
    rogue_vendor = SigningKey.from_seed(bytes([9]) * 32)
    rogue = make_test_host(rogue_vendor, CATALOG)  # a host licensed by someone else
    fill(rogue, 10, T0)
    addr = net.add_host("rogue.corp.example", rogue)
    net.srv[SRV_NAME] = [SrvRecord(0, 0, 1688, addr.host)]
    act = net.activation(tmp_path / "m", sku=SERVER.name)
    act.set_domain(DOMAIN)
    before = act.load()
    st = act.activate()
    assert not st.activated and st.state == "grace"
    assert "host license refused" in (st.last_error or "") and "vendor" in (st.last_error or "")
    after = act.load()
    assert after.ticket is None and after.machine.valid_until is None
    assert after.cmid == before.cmid and after.cached_host is None


def test_a_replayed_or_misaddressed_ticket_is_refused(tmp_path: Path) -> None:
    clock = Clock()
    net = Network(clock)
    real = make_test_host(VENDOR, CATALOG)
    fill(real, 10, T0)
    captured: list[bytes] = []

    def recorder(frame: bytes) -> bytes:
        reply = real.handle_frame(frame, now=int(clock()))
        captured.append(reply)
        return reply

    addr = net.add_host("kms.corp.example", recorder)
    net.srv[SRV_NAME] = [SrvRecord(0, 0, 1688, addr.host)]
    act = net.activation(tmp_path / "m", sku=SERVER.name)
    act.set_domain(DOMAIN)
    first = act.activate()
    assert first.activated
    old_reply = next(f for f in captured if isinstance(decode(f), ActivateReply))
    # Replay: the same (genuine) reply to a later request, whose nonce differs.
    clock.advance(8 * DAY)
    net.hosts[addr] = lambda frame: old_reply
    st = act.activate()
    assert "nonce" in (st.last_error or "") and st.result == "ok"
    assert act.load().machine.last_success_at == T0  # the replay granted nothing
    # A genuine ticket for another machine, signed by the real host.
    other = act.load()
    host_key = SigningKey.from_seed(bytes(range(32)))  # make_test_host's default
    t = ActivationTicket(
        other.cmid.__class__(int=5), SERVER.id, bytes(16), bytes.fromhex("0123456789abcdef"),
        int(clock()), int(clock()) + 180 * DAY, 120, 10080, 10,
    ).sign(host_key)  # fmt: skip
    forged = encode(
        ActivateReply(Result.OK, 10, 5, 120, 10080, bytes.fromhex("0123456789abcdef"), t)
    )
    net.hosts[addr] = lambda frame: forged
    st2 = act.activate()
    assert "another machine" in (st2.last_error or "") or "machine" in (st2.last_error or "")
    assert act.load().ticket == other.ticket


def test_revoked_host_is_refused(tmp_path: Path) -> None:
    from client_support import make_profile
    from volact.documents import RevocationList

    host_id = bytes.fromhex("0123456789abcdef")
    rl = RevocationList(VENDOR.key_id, 1, T0, host_ids=frozenset({host_id})).sign(VENDOR)
    profile = make_profile(revocations=rl)
    net, _ = one_host_network()
    fill(net.core(next(iter(net.hosts))), 10, T0)
    act = net.activation(tmp_path / "m", sku=SERVER.name, profile=profile)
    act.set_domain(DOMAIN)
    st = act.activate()
    assert not st.activated and "revoked" in (st.last_error or "")
    assert HostLicense  # imported for the type of documents involved


def test_async_twins(tmp_path: Path) -> None:
    net, _ = one_host_network()
    fill(net.core(next(iter(net.hosts))), 4, T0)
    act = net.activation(tmp_path / "m", sku=SERVER.name)
    act.set_domain(DOMAIN)

    async def go() -> tuple[bool, str]:
        st = await act.activate_async()
        st2 = await act.status_async()
        return st.activated, st2.state

    assert asyncio.run(go()) == (True, "licensed")


# ---- tickets whose dates cannot be right -------------------------------------------


def _host_with(tmp_path: Path, **attrs: object) -> tuple[Network, Clock, object]:
    net, clock = one_host_network()
    core = net.core(next(iter(net.hosts)))
    fill(core, 10, T0)
    for name, value in attrs.items():
        setattr(core, name, value)
    act = net.activation(tmp_path / "m", sku=SERVER.name)
    act.set_domain(DOMAIN)
    return net, clock, act


def test_a_ticket_valid_for_ten_years_is_refused(tmp_path: Path) -> None:
    _, _, act = _host_with(tmp_path, validity=3650 * DAY)
    before = act.load()  # type: ignore[attr-defined]
    st = act.activate()  # type: ignore[attr-defined]
    assert not st.activated and st.state == "grace"
    assert "3650 days of validity" in (st.last_error or "")
    after = act.load()  # type: ignore[attr-defined]
    assert after.ticket is None and after.machine.valid_until is None
    assert after.cmid == before.cmid


def test_a_ticket_issued_in_the_future_or_already_expired_is_refused(tmp_path: Path) -> None:
    net, clock, act = _host_with(tmp_path, max_skew=400 * DAY)
    addr = next(iter(net.hosts))
    core = net.core(addr)
    net.hosts[addr] = lambda frame: core.handle_frame(frame, now=int(clock()) + DAY)
    st = act.activate()  # type: ignore[attr-defined]
    assert not st.activated and "in the future" in (st.last_error or "")
    net.hosts[addr] = lambda frame: core.handle_frame(frame, now=int(clock()) - 200 * DAY)
    st = act.activate()  # type: ignore[attr-defined]
    assert not st.activated and "already expired" in (st.last_error or "")
    assert act.load().ticket is None  # type: ignore[attr-defined]
    # A host 3 hours ahead is within the skew a host itself accepts.
    net.hosts[addr] = lambda frame: core.handle_frame(frame, now=int(clock()) + 3 * 3600)
    assert act.activate().activated  # type: ignore[attr-defined]


def test_the_host_licenses_expiry_caps_the_validity(tmp_path: Path) -> None:
    clock = Clock()
    net = Network(clock)
    core = make_test_host(VENDOR, CATALOG, expires_at=T0 + 30 * DAY)
    fill(core, 10, T0)
    addr = net.add_host("kms1.corp.example", core)
    net.srv[SRV_NAME] = [SrvRecord(0, 0, addr.port, addr.host)]
    act = net.activation(tmp_path / "m", sku=SERVER.name)
    act.set_domain(DOMAIN)
    st = act.activate()
    assert st.activated and st.valid_until == T0 + 30 * DAY
    assert act.status().valid_until == T0 + 30 * DAY  # re-verified from the stored ticket
    clock.advance(30 * DAY)
    assert act.status().state == "notification"


# ---- the schedule survives errors, and clocks set back -----------------------------


def test_a_mak_installed_during_an_attempt_discards_its_outcome(tmp_path: Path) -> None:
    from volact.keys import KeyKind, ProductKey

    net, _clock = one_host_network()
    addr = next(iter(net.hosts))
    core = net.core(addr)
    fill(core, 10, T0)
    act = net.activation(tmp_path / "m", sku=SERVER.name)
    act.set_domain(DOMAIN)
    mak = ProductKey.generate(KeyKind.MAK, bytes(range(12))).text

    def host(frame: bytes) -> bytes:
        if act.load().machine.key_kind is KeyKind.GVLK:
            act.install_key(mak, sku=SERVER.name)  # the same SKU, another kind of key
        return core.handle_frame(frame, now=T0)

    net.hosts[addr] = host
    st = act.activate()  # a granted ticket for a GVLK machine that now holds a MAK
    assert not st.activated and st.key_kind == "mak"
    assert any(e["event"] == "outcome_discarded" for e in act.events())
    assert act.load().ticket is None


def test_the_schedule_survives_a_damaged_state_file(tmp_path: Path) -> None:
    net, clock = one_host_network()
    act = net.activation(tmp_path / "m")
    act.set_domain(DOMAIN)
    path = act.store.state_path
    good = path.read_bytes()
    path.write_bytes(good[:-10])  # damaged: every load raises StoreError
    sleeps: list[float] = []
    steps: list[str] = []

    def sleep(seconds: float) -> bool:
        sleeps.append(seconds)
        clock.advance(seconds)
        if len(sleeps) == 2:
            path.write_bytes(good)  # the administrator restores it
        return False

    st = act.run_schedule(
        max_steps=4, sleep=sleep, max_sleep=30 * DAY,
        on_step=lambda status, acted: steps.append(status.result or "-"),
    )  # fmt: skip
    # Two failed steps backed off one activation interval each, then it went on.
    assert sleeps[:2] == [120 * 60, 120 * 60]
    assert steps[0] == "count_too_low" and st.result == "count_too_low"
    errors = [e for e in act.events() if e["event"] == "schedule_error"]
    assert len(errors) == 2 and errors[0]["error"] == "StoreError"


def test_the_async_schedule_survives_errors(tmp_path: Path) -> None:
    net, _clock = one_host_network()
    act = net.activation(tmp_path / "m")  # no domain, no search domain, no host: fine
    path = act.store.state_path
    good = path.read_bytes()
    path.write_bytes(b"garbage")

    async def go() -> list[bool]:
        acted: list[bool] = []
        task = asyncio.create_task(
            act.run_schedule_async(max_steps=2, max_sleep=0.01,
                                   on_step=lambda s, a: acted.append(a))
        )  # fmt: skip
        await asyncio.sleep(0.005)
        path.write_bytes(good)
        await task
        return acted

    assert asyncio.run(go()) == [True]  # the first step failed, the second acted
    assert [e["event"] for e in act.events()].count("schedule_error") == 1


def test_a_clock_set_back_makes_the_next_attempt_due(tmp_path: Path) -> None:
    net, clock = one_host_network()
    act = net.activation(tmp_path / "m")
    act.set_domain(DOMAIN)
    clock.advance(3650 * DAY)  # the clock was 10 years ahead
    assert act.activate().result == "count_too_low"
    clock.t = T0 + 60  # and was corrected
    st = act.status()
    assert st.next_action_at == T0 + 60 and st.grace_until == T0 + 30 * DAY
    st, acted = act.tick()
    assert acted and st.next_action_at == T0 + 60 + 120 * 60
