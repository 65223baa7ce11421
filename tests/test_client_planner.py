"""The attempt planner: RFC 2782 choice, discovery order, caching, failover, time bound,
hostile DNS answers. Records are given as data; no DNS, no sockets."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client_support import CATALOG, DAY, DESKTOP, PROFILE, T0, VENDOR
from volact.client.planner import (
    MAX_SRV_RECORDS,
    AttemptPlanner,
    DiscoveryConfig,
    Exchange,
    Finished,
    LookupSrv,
    Verifier,
    request_for,
    rfc2782_order,
    run_sync,
    sanitize_srv,
)
from volact.client.srv import HostAddress, SrvRecord
from volact.errors import TransportError, UsageError
from volact.testing.hosts import make_test_host
from volact.wire import LicenseState

LABEL = "_volact._tcp"


def srv(target: str, priority: int = 0, weight: int = 0, port: int = 1688) -> SrvRecord:
    return SrvRecord(priority, weight, port, target)


def first_choice_shares(records: list[SrvRecord], n: int, seed: int = 42) -> dict[str, float]:
    rng = random.Random(seed)
    c = Counter(rfc2782_order(records, rng)[0].target for _ in range(n))
    return {k: v / n for k, v in c.items()}


def test_rfc2782_weights_10_20_give_one_third_and_two_thirds() -> None:
    n = 30_000
    shares = first_choice_shares([srv("a", weight=10), srv("b", weight=20)], n)
    # 4 standard deviations of a binomial share at n=30000 is about 0.011.
    assert shares["a"] == pytest.approx(1 / 3, abs=0.011)
    assert shares["b"] == pytest.approx(2 / 3, abs=0.011)


def test_rfc2782_lowest_priority_first_and_every_record_once() -> None:
    recs = [srv("low1", 10, 5), srv("high", 0, 1), srv("low2", 10, 50), srv("mid", 5, 0)]
    for seed in range(50):
        order = rfc2782_order(recs, random.Random(seed))
        assert order[0].target == "high" and order[1].target == "mid"
        assert sorted(r.target for r in order) == ["high", "low1", "low2", "mid"]


def test_rfc2782_weight_zero_after_weighted_and_all_zero_uniform() -> None:
    for seed in range(100):
        order = rfc2782_order([srv("z", weight=0), srv("w", weight=1)], random.Random(seed))
        assert order[0].target == "w"
    shares = first_choice_shares([srv("a"), srv("b"), srv("c")], 9000)
    for t in "abc":
        assert shares[t] == pytest.approx(1 / 3, abs=0.03)


def test_sanitize_skips_malformed_and_hostile_records() -> None:
    good = srv("kms1.corp.example.", 0, 5)
    records: list[Any] = [
        good,
        srv("."),  # RFC 2782: service not available here
        srv("bad name with spaces"),
        srv("x" * 64 + ".example"),  # label too long
        srv("a." * 130 + "example"),  # name too long
        srv("ok.example", port=0),
        SrvRecord(-1, 0, 1688, "neg.example"),
        SrvRecord(0, 70000, 1688, "big.example"),
        "not a record",
        None,
        srv("KMS1.corp.example"),  # a duplicate once lowercased
        srv("-dash.example"),
    ]
    out = sanitize_srv(records)
    assert out == [SrvRecord(0, 5, 1688, "kms1.corp.example")]
    flood = [srv(f"h{i}.example") for i in range(1000)]
    assert len(sanitize_srv(flood)) == MAX_SRV_RECORDS


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(
            SrvRecord,
            st.integers(-5, 70000),
            st.integers(-5, 70000),
            st.integers(-5, 70000),
            st.text(max_size=80),
        ),
        max_size=60,
    ),
    st.integers(0, 2**32),
)
def test_any_srv_answer_gives_a_bounded_valid_order(records: list[SrvRecord], seed: int) -> None:
    good = sanitize_srv(records)
    assert len(good) <= MAX_SRV_RECORDS
    order = rfc2782_order(good, random.Random(seed))
    assert sorted(order, key=repr) == sorted(good, key=repr)
    assert [r.priority for r in order] == sorted(r.priority for r in order)
    for r in order:
        assert 0 < r.port <= 65535 and r.target == r.target.lower()
        HostAddress(r.target, r.port)


# ---- the planner -------------------------------------------------------------------


def planner(config: DiscoveryConfig, *, limit: float = 30.0, seed: int = 1) -> AttemptPlanner:
    req = request_for(
        sku=DESKTOP.id, cmid=uuid.uuid4(), nonce=bytes(16), now=T0,
        state=LicenseState.GRACE, minutes_left=100, vm=True, workstation="w" * 100,
    )  # fmt: skip
    return AttemptPlanner(
        request=req,
        verifier=Verifier(PROFILE.vendor_public_key, CATALOG),
        config=config,
        licenses={},
        rng=random.Random(seed),
        started=0.0,
        time_limit=limit,
    )


def test_workstation_name_is_cut_to_63_bytes() -> None:
    p = planner(DiscoveryConfig(LABEL, manual_host=HostAddress("h")))
    assert len(p.request.workstation.encode()) == 63


def test_manual_host_wins_and_is_the_only_host() -> None:
    p = planner(
        DiscoveryConfig(LABEL, manual_host=HostAddress("::1", 9000), domain="corp.example",
                        cached_host=HostAddress("cached"))
    )  # fmt: skip
    step = p.next_step(0.0)
    assert isinstance(step, Exchange) and step.address == HostAddress("::1", 9000)
    p.exchange_failed("refused")
    done = p.next_step(0.0)
    assert isinstance(done, Finished) and not done.outcome.answered
    assert "refused" in (done.outcome.error or "")


def test_cached_host_first_then_domain_then_next_search_domain() -> None:
    cfg = DiscoveryConfig(
        LABEL, search_domains=("a.example", "b.example"), cached_host=HostAddress("old")
    )
    p = planner(cfg)
    s1 = p.next_step(0.0)
    assert isinstance(s1, Exchange) and s1.address.host == "old"
    p.exchange_failed("timeout")
    s2 = p.next_step(0.0)
    assert isinstance(s2, LookupSrv) and s2.name == "_volact._tcp.a.example"
    p.srv_answer([])
    s3 = p.next_step(0.0)
    assert isinstance(s3, LookupSrv) and s3.name == "_volact._tcp.b.example"
    p.srv_answer([srv("old"), srv("new", port=1700)])  # the dead cached host is not retried
    s4 = p.next_step(0.0)
    assert isinstance(s4, Exchange) and s4.address == HostAddress("new", 1700)


def test_caching_off_ignores_the_cached_host() -> None:
    cfg = DiscoveryConfig(LABEL, domain="corp.example", caching=False,
                          cached_host=HostAddress("old"))  # fmt: skip
    step = planner(cfg).next_step(0.0)
    assert isinstance(step, LookupSrv)


def test_no_domain_at_all_says_what_to_do() -> None:
    done = planner(DiscoveryConfig(LABEL)).next_step(0.0)
    assert isinstance(done, Finished)
    assert "set-host or set-domain" in (done.outcome.error or "")


def test_time_bound_ends_the_attempt() -> None:
    p = planner(DiscoveryConfig(LABEL, domain="corp.example"), limit=10.0)
    step = p.next_step(0.0)
    assert isinstance(step, LookupSrv)
    p.srv_answer([srv(f"h{i}") for i in range(5)])
    assert isinstance(p.next_step(1.0), Exchange)
    p.exchange_failed("timeout")
    done = p.next_step(10.5)
    assert isinstance(done, Finished) and "time bound" in (done.outcome.error or "")
    assert p.next_step(99.0) == done  # finished stays finished


def test_steps_must_be_answered_in_order() -> None:
    p = planner(DiscoveryConfig(LABEL, domain="corp.example"))
    p.next_step(0.0)
    with pytest.raises(UsageError):
        p.next_step(0.0)
    with pytest.raises(UsageError):
        p.exchange_failed("x")


def test_failover_skips_error_replies_but_stops_at_count_too_low() -> None:
    dead = make_test_host(VENDOR, CATALOG, activated=False)  # answers HOST_NOT_ACTIVATED
    live = make_test_host(VENDOR, CATALOG)  # count 1 < 25: COUNT_TOO_LOW
    hosts = {"dead": dead, "live": live}
    calls: list[str] = []

    def exchange(a: HostAddress, frame: bytes, t: float) -> bytes:
        calls.append(a.host)
        if a.host == "gone":
            raise TransportError("connection refused")
        return hosts[a.host].handle_frame(frame, now=T0)

    p = planner(DiscoveryConfig(LABEL, domain="corp.example"))
    recs = [srv("gone", 0), srv("dead", 1), srv("live", 2), srv("never", 3)]
    out = run_sync(p, lookup_srv=lambda n, t: recs, exchange=exchange, monotonic=lambda: 0.0)
    assert calls == ["gone", "dead", "live"]
    assert out.answered and not out.activated
    assert out.reply is not None and out.reply.count == 1 and out.reply.required == 25
    assert [h for h, _ in out.failures] == ["gone:1688", "dead:1688"]
    kinds = [e["event"] for e in out.events]
    assert kinds.count("request_sent") == 3 and "reply_processed" in kinds


def test_lookup_failure_moves_on_to_the_next_domain() -> None:
    def lookup(name: str, t: float) -> list[SrvRecord]:
        if "a.example" in name:
            raise TransportError("no nameserver answered")
        return []

    p = planner(DiscoveryConfig(LABEL, search_domains=("a.example", "b.example")))
    out = run_sync(p, lookup_srv=lookup, exchange=lambda *a: b"", monotonic=lambda: 0.0)
    assert out.error is not None and "b.example" in out.error
    assert any("no nameserver answered" in r for _, r in out.failures)


def test_garbage_reply_is_a_failure_not_a_crash() -> None:
    p = planner(DiscoveryConfig(LABEL, manual_host=HostAddress("h")))
    out = run_sync(
        p, lookup_srv=lambda n, t: [], exchange=lambda *a: b"\x00\x05\x01\x02xyz",
        monotonic=lambda: 0.0,
    )  # fmt: skip
    assert not out.answered and "malformed" in (out.failures[0][1])


def test_the_license_fetch_gets_only_what_is_left_of_the_attempt() -> None:
    from client_support import fill

    host = make_test_host(VENDOR, CATALOG)
    fill(host, 30, T0)  # over the threshold: an OK reply, whose license must be fetched
    p = planner(DiscoveryConfig(LABEL, manual_host=HostAddress("h")), limit=10.0)
    step = p.next_step(0.0)
    assert isinstance(step, Exchange) and step.timeout == 5.0
    follow = p.exchange_answer(host.handle_frame(step.frame, now=T0), 8.5)
    assert isinstance(follow, Exchange) and follow.purpose == "license"
    assert follow.timeout == 1.5  # not the full 5 s exchange timeout
    # With nothing left, no fetch is started and the attempt ends on its time bound.
    p2 = planner(DiscoveryConfig(LABEL, manual_host=HostAddress("h")), limit=10.0)
    step2 = p2.next_step(0.0)
    assert isinstance(step2, Exchange)
    assert p2.exchange_answer(host.handle_frame(step2.frame, now=T0), 10.0) is None
    done = p2.next_step(10.0)
    assert isinstance(done, Finished) and not done.outcome.activated
    assert "no time left" in done.outcome.failures[-1][1]


# ---- a cached host license that no longer matches the host (issue 11.4) -------------


def _exchanges(core: Any, log: list[str], now: int) -> Any:
    """An in-memory exchange with ``core`` that records each frame's purpose."""
    from volact.wire import GetLicense, decode

    def exchange(address: HostAddress, frame: bytes, timeout: float) -> bytes:
        log.append("license" if isinstance(decode(frame), GetLicense) else "activate")
        return bytes(core(frame) if callable(core) else core.handle_frame(frame, now=now))

    return exchange


def _impostor_and_real() -> tuple[Any, Any]:
    """Two hosts with one host id, each with a vendor-signed license for its own key:
    what an authority that signed a copied id once produced."""
    from client_support import fill
    from volact.signing import SigningKey

    real = make_test_host(VENDOR, CATALOG)
    impostor = make_test_host(VENDOR, CATALOG, host_key=SigningKey.from_seed(bytes([5]) * 32))
    assert real.config.host_id == impostor.config.host_id
    assert real.license_bytes != impostor.license_bytes
    for core in (real, impostor):
        fill(core, 10, T0)
    return real, impostor


def _client() -> Any:
    from dataclasses import replace

    from client_support import SERVER
    from volact.client.state import new_state

    s = new_state(PROFILE, cmid=uuid.UUID(int=77), now=T0, sku=SERVER.name, workstation="ws")
    return replace(s, manual_host=HostAddress("kms.corp.example"))


def test_a_license_cached_from_an_impostor_is_refetched_once_and_replaced() -> None:
    from client_support import attempt

    real, impostor = _impostor_and_real()
    host_id = real.config.host_id.hex()
    log: list[str] = []
    # Day 0: the impostor answers for the name; its license is cached under the id.
    s = attempt(_client(), _exchanges(impostor, log, T0), T0)
    assert s.machine.activated(T0) and s.licenses[host_id] == impostor.license_bytes
    assert log == ["activate", "license"]
    # Day 7 (the clock moved by hand): the real host answers. Its ticket does not
    # verify against the cached license: the client fetches the license once more,
    # verifies it against the vendor key, and keeps it because it verifies.
    now = T0 + 7 * DAY
    log.clear()
    s = attempt(s, _exchanges(real, log, now), now)
    assert log == ["activate", "license"]  # one refetch, not a loop
    assert s.machine.activated(now) and s.machine.last_success_at == now
    assert s.last is not None and s.last.error is None
    assert s.licenses[host_id] == real.license_bytes  # the cache now holds the real one
    # Day 14: the renewal needs no fetch at all.
    now += 7 * DAY
    log.clear()
    s = attempt(s, _exchanges(real, log, now), now)
    assert log == ["activate"] and s.machine.last_success_at == now


def test_the_cache_is_replaced_only_by_a_license_that_verifies() -> None:
    from client_support import attempt
    from volact.documents import HostLicense
    from volact.signing import SigningKey
    from volact.wire import GetLicense, LicenseReply, decode, encode

    real, impostor = _impostor_and_real()
    host_id = real.config.host_id.hex()
    s = attempt(_client(), _exchanges(impostor, [], T0), T0)
    cached = s.licenses[host_id]
    rogue = SigningKey.from_seed(bytes([9]) * 32)
    forged = HostLicense(
        rogue.key_id, real.config.host_id, real.signing_key.public_key, b"\x42" * 12,
        ("server", "desktop"), 0,
    ).sign(rogue)  # fmt: skip

    def real_with_forged_license(frame: bytes) -> bytes:
        if isinstance(decode(frame), GetLicense):
            return encode(LicenseReply(forged))
        return real.handle_frame(frame, now=T0 + DAY)

    for host, why in ((real_with_forged_license, "host license refused"),
                      (lambda frame: b"", "malformed reply")):  # fmt: skip
        log: list[str] = []
        after = attempt(s, _exchanges(host, log, T0 + DAY), T0 + DAY)
        assert log == ["activate", "license"][: len(log)] and len(log) <= 2
        assert after.licenses[host_id] == cached  # unchanged
        assert after.last is not None and why in (after.last.error or "")
        assert after.machine.last_success_at == T0  # nothing granted
    # Once the real license is cached, a reply whose ticket fails for a reason no
    # license can fix (a replay of an old reply) is no reason to fetch it again.
    captured: list[bytes] = []

    def recorder(frame: bytes) -> bytes:
        captured.append(real.handle_frame(frame, now=T0 + DAY))
        return captured[-1]

    s = attempt(s, _exchanges(recorder, [], T0 + DAY), T0 + DAY)
    assert s.licenses[host_id] == real.license_bytes
    replay = next(f for f in captured if not isinstance(decode(f), LicenseReply))
    log = []
    after = attempt(s, _exchanges(lambda frame: replay, log, T0 + 2 * DAY), T0 + 2 * DAY)
    assert log == ["activate"] and after.last is not None
    assert "nonce" in (after.last.error or "")
