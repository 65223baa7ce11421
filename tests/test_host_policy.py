"""The host's policy core in memory: counting, thresholds, VM policy, result codes.

No sockets, no store, no sleeping: the clock is an integer moved by hand.
"""

from __future__ import annotations

import itertools
import os
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from volact import wire
from volact.catalog import demo_catalog
from volact.documents import HostLicense, RevocationList, verify_chain
from volact.errors import ConfigurationError, DecodeError
from volact.host.client_index import COUNT_WINDOW, ClientIndex
from volact.host.malformed import MalformedLog
from volact.host.policy import MAX_CLOCK_SKEW, VALIDITY, HostCore, check_license
from volact.signing import SigningKey
from volact.testing.hosts import make_test_host
from volact.wire import ActivateReply, ActivateRequest, LicenseState, Result

CAT = demo_catalog()
VENDOR = SigningKey.from_seed(b"\x07" * 32)
DESKTOP = CAT.sku("Professional")  # group desktop, threshold 25
SERVER = CAT.sku("Datacenter")  # group server, threshold 5
T0 = 1_800_000_000
DAY = 86_400


def request(
    i: int,
    *,
    sku: uuid.UUID = DESKTOP.id,
    now: int = T0,
    vm: bool = False,
    state: LicenseState = LicenseState.GRACE,
    nonce: bytes | None = None,
) -> ActivateRequest:
    return ActivateRequest(
        sku, uuid.UUID(int=i + 1), nonce or os.urandom(16), now, state, 1000, vm, f"pc-{i}"
    )


def ask(core: HostCore, req: ActivateRequest, now: int = T0) -> ActivateReply:
    reply = wire.decode(core.handle_frame(wire.encode(req), now=now, address="192.0.2.1"))
    assert isinstance(reply, ActivateReply)
    return reply


def test_the_25th_distinct_machine_activates_and_the_24th_does_not() -> None:
    core = make_test_host(VENDOR, CAT)
    replies = [ask(core, request(i)) for i in range(25)]
    assert [r.result for r in replies[:24]] == [Result.COUNT_TOO_LOW] * 24
    assert replies[23].count == 24 and replies[23].required == 25
    assert replies[23].ticket is None
    assert replies[24].result is Result.OK and replies[24].count == 25
    # The same 24th machine asking again now is granted: the count has reached 25.
    again = ask(core, request(23))
    assert again.result is Result.OK and again.count == 25


def test_a_repeated_machine_is_counted_once() -> None:
    core = make_test_host(VENDOR, CAT)
    for _ in range(30):
        r = ask(core, request(1))
    assert r.count == 1 and r.result is Result.COUNT_TOO_LOW


def test_server_group_threshold_is_five() -> None:
    core = make_test_host(VENDOR, CAT)
    results = [ask(core, request(i, sku=SERVER.id)).result for i in range(5)]
    assert results == [Result.COUNT_TOO_LOW] * 4 + [Result.OK]


def test_the_count_spans_skus() -> None:
    """One count per host: desktops asking help the server group reach 5."""
    core = make_test_host(VENDOR, CAT)
    for i in range(4):
        assert ask(core, request(i)).result is Result.COUNT_TOO_LOW
    r = ask(core, request(4, sku=SERVER.id))
    assert r.result is Result.OK and r.count == 5


def test_grant_carries_a_ticket_that_verifies_against_the_vendor_key() -> None:
    core = make_test_host(VENDOR, CAT, activation_interval=60, renewal_interval=1440)
    for i in range(24):
        ask(core, request(i))
    req = request(24)
    r = ask(core, req)
    assert r.result is Result.OK and r.ticket is not None
    assert (r.activation_interval, r.renewal_interval) == (60, 1440)
    lic, ticket = verify_chain(
        VENDOR.public_key,
        CAT,
        core.license_bytes,
        r.ticket,
        cmid=req.cmid,
        nonce=req.nonce,
        now=T0,
    )
    assert ticket.valid_until == T0 + VALIDITY == T0 + 180 * DAY
    assert ticket.count == 25 and ticket.host_id == lic.host_id == r.host_id
    assert (ticket.activation_interval, ticket.renewal_interval) == (60, 1440)


def test_a_machine_not_seen_for_30_days_leaves_the_count() -> None:
    core = make_test_host(VENDOR, CAT)
    for i in range(25):
        ask(core, request(i, now=T0), now=T0)
    later = T0 + 20 * DAY
    for i in range(1, 25):  # every machine but #0 comes back on day 20
        ask(core, request(i, now=later), now=later)
    assert core.count(T0 + COUNT_WINDOW - 1) == 25
    # 30 days after its last contact, machine #0 is gone; the others are not.
    assert core.count(T0 + COUNT_WINDOW) == 24
    r = ask(core, request(24, now=T0 + COUNT_WINDOW), now=T0 + COUNT_WINDOW)
    assert r.result is Result.COUNT_TOO_LOW and r.count == 24
    # 30 days after day 20, only the machine that asked on day 30 is left.
    assert core.count(later + COUNT_WINDOW) == 1
    assert core.count(T0 + 2 * COUNT_WINDOW) == 0


def test_a_renewal_restarts_its_30_days_and_its_180_day_validity() -> None:
    core = make_test_host(VENDOR, CAT)
    for i in range(25):
        ask(core, request(i))
    first = ask(core, request(0))
    renew_at = T0 + 25 * DAY
    for i in range(25):  # all renew on day 25 (each one is still within its window)
        renewed = ask(core, request(i, now=renew_at, state=LicenseState.LICENSED), now=renew_at)
        assert renewed.result is Result.OK
    assert first.ticket is not None and renewed.ticket is not None
    t_first = verify_chain(
        VENDOR.public_key,
        CAT,
        core.license_bytes,
        first.ticket,
        cmid=uuid.UUID(int=1),
        nonce=None,
        now=T0,
    )[1]
    t_renewed = verify_chain(
        VENDOR.public_key,
        CAT,
        core.license_bytes,
        renewed.ticket,
        cmid=uuid.UUID(int=25),
        nonce=None,
        now=renew_at,
    )[1]
    assert t_first.valid_until == T0 + VALIDITY
    assert t_renewed.valid_until == renew_at + VALIDITY
    # Day 40: without the renewal, the first contacts (day 0) would have left the count.
    assert core.count(T0 + 40 * DAY) == 25
    assert core.count(renew_at + COUNT_WINDOW) == 0


def test_physical_only_policy_ignores_virtual_machines() -> None:
    core = make_test_host(VENDOR, CAT, count_vms=False)
    for i in range(30):  # 30 VMs: none counts
        r = ask(core, request(i, vm=True))
        assert r.result is Result.COUNT_TOO_LOW and r.count == 0
    for i in range(100, 124):
        assert ask(core, request(i)).result is Result.COUNT_TOO_LOW
    assert ask(core, request(124)).result is Result.OK  # the 25th physical machine
    # Once the physical count is met, a VM is activated too (it just does not count).
    r = ask(core, request(0, vm=True))
    assert r.result is Result.OK and r.count == 25


def test_default_policy_counts_virtual_machines() -> None:
    core = make_test_host(VENDOR, CAT)
    results = [ask(core, request(i, vm=True)).result for i in range(25)]
    assert results[-1] is Result.OK and results[-2] is Result.COUNT_TOO_LOW


def test_a_machine_that_turns_physical_counts_again() -> None:
    index = ClientIndex()
    index.touch(b"a" * 16, T0, True)
    assert index.count(T0, count_vms=False) == 0
    index.touch(b"a" * 16, T0 + 1, False)
    assert index.count(T0 + 1, count_vms=False) == 1


@pytest.mark.parametrize("skew", [MAX_CLOCK_SKEW + 1, -(MAX_CLOCK_SKEW + 1), 10 * DAY])
def test_a_skewed_clock_gets_its_own_code_and_is_not_counted(skew: int) -> None:
    core = make_test_host(VENDOR, CAT)
    r = ask(core, request(1, now=T0 + skew), now=T0)
    assert r.result is Result.CLOCK_SKEW and r.ticket is None
    assert core.count(T0) == 0


def test_a_clock_at_the_skew_limit_is_accepted() -> None:
    core = make_test_host(VENDOR, CAT)
    assert ask(core, request(1, now=T0 - MAX_CLOCK_SKEW)).result is Result.COUNT_TOO_LOW


def test_an_uncovered_sku_gets_its_own_code() -> None:
    core = make_test_host(VENDOR, CAT, groups=("desktop",))
    for i in range(30):
        ask(core, request(i))
    r = ask(core, request(99, sku=SERVER.id))
    assert r.result is Result.SKU_NOT_COVERED and r.count == 31 and r.required == 5


def test_an_unknown_sku_gets_its_own_code() -> None:
    core = make_test_host(VENDOR, CAT)
    r = ask(core, request(1, sku=uuid.UUID(int=42)))
    assert r.result is Result.UNKNOWN_SKU and r.required == 0


def test_an_unactivated_host_gets_its_own_code_but_still_counts() -> None:
    core = make_test_host(VENDOR, CAT, activated=False)
    replies = [ask(core, request(i)) for i in range(30)]
    assert {r.result for r in replies} == {Result.HOST_NOT_ACTIVATED}
    assert replies[-1].count == 30 and replies[-1].host_id == bytes(8)
    lic = wire.decode(core.handle_frame(wire.encode(wire.GetLicense()), now=T0))
    assert lic == wire.LicenseReply(b"")


def test_an_expired_host_license_gets_its_own_code() -> None:
    core = make_test_host(VENDOR, CAT, expires_at=T0 + DAY)
    for i in range(25):
        ask(core, request(i))
    assert core.count(T0) == 25
    later = T0 + DAY
    r = ask(core, request(1, now=later), now=later)
    assert r.result is Result.HOST_LICENSE_EXPIRED


def test_a_revoked_host_gets_its_own_code() -> None:
    host_id = bytes.fromhex("0123456789abcdef")
    revs = RevocationList(VENDOR.key_id, 1, T0, host_ids=frozenset({host_id}))
    core = make_test_host(VENDOR, CAT, host_id=host_id, revocations=revs)
    for i in range(25):
        r = ask(core, request(i))
    assert r.result is Result.HOST_REVOKED


def test_a_license_for_another_host_is_refused_at_start() -> None:
    core = make_test_host(VENDOR, CAT)
    with pytest.raises(ConfigurationError, match="another host signing key"):
        HostCore(
            config=core.config,
            catalog=CAT,
            signing_key=SigningKey.from_seed(b"\x01" * 32),
            host_license=core.license_bytes,
            vendor_public_key=VENDOR.public_key,
        )
    other_vendor = SigningKey.from_seed(b"\x02" * 32)
    with pytest.raises(Exception, match="vendor key"):
        HostCore(
            config=core.config,
            catalog=CAT,
            signing_key=core.signing_key,
            host_license=core.license_bytes,
            vendor_public_key=other_vendor.public_key,
        )


def test_get_license_returns_the_license() -> None:
    core = make_test_host(VENDOR, CAT)
    reply = wire.decode(core.handle_frame(wire.encode(wire.GetLicense()), now=T0))
    assert reply == wire.LicenseReply(core.license_bytes)


def test_another_protocol_version_is_answered_with_its_code() -> None:
    core = make_test_host(VENDOR, CAT)
    frame = bytearray(wire.encode(request(1)))
    frame[2] = 9
    reply = wire.decode(core.handle_frame(bytes(frame), now=T0))
    assert isinstance(reply, ActivateReply) and reply.result is Result.UNSUPPORTED_VERSION
    assert core.count(T0) == 0


def test_replies_are_not_requests() -> None:
    core = make_test_host(VENDOR, CAT)
    reply = ActivateReply(Result.BUSY, 0, 0, 120, 10080, bytes(8))
    with pytest.raises(DecodeError):
        core.handle_frame(wire.encode(reply), now=T0)


def test_decision_record_and_commit_rule() -> None:
    core = make_test_host(VENDOR, CAT, groups=("server", "desktop"))
    refused = core.decide_frame(wire.encode(request(1)), now=T0, address="192.0.2.7")
    assert refused.record is not None and not refused.must_commit
    assert refused.record.address == "192.0.2.7" and refused.record.valid_until == 0
    for i in range(2, 26):
        d = core.decide_frame(wire.encode(request(i)), now=T0, address="192.0.2.7")
    assert d.must_commit and d.record is not None
    assert d.record.valid_until == T0 + VALIDITY and d.record.result == Result.OK
    lic = core.decide_frame(wire.encode(wire.GetLicense()), now=T0)
    assert lic.record is None and not lic.must_commit


def test_size_budget_of_an_activation_exchange() -> None:
    core = make_test_host(VENDOR, CAT)
    for i in range(25):
        ask(core, request(i))
    req = ActivateRequest(
        DESKTOP.id,
        uuid.uuid4(),
        os.urandom(16),
        T0,
        LicenseState.LICENSED,
        2**32 - 1,
        True,
        "w" * 63,
    )
    frame = wire.encode(req)
    reply = core.handle_frame(frame, now=T0)
    assert len(frame) == 130 and len(reply) == 179
    assert max(len(frame), len(reply)) <= 200


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 15), st.integers(0, 90 * DAY), st.booleans()),
        min_size=1,
        max_size=60,
    ),
    st.integers(0, 120 * DAY),
)
def test_client_index_matches_a_naive_count(
    touches: list[tuple[int, int, bool]], probe: int
) -> None:
    """Touches in time order, then a probe: the index agrees with counting by hand."""
    touches = sorted(touches, key=lambda t: t[1])
    index = ClientIndex()
    last: dict[int, tuple[int, bool]] = {}
    for machine, t, vm in touches:
        index.touch(bytes([machine]) * 16, t, vm)
        last[machine] = (max(t, last.get(machine, (t, vm))[0]), vm)
    now = max(probe, touches[-1][1])
    live = {m: v for m, (t, v) in last.items() if t > now - COUNT_WINDOW}
    assert index.count(now, count_vms=True) == len(live)
    assert index.count(now, count_vms=False) == sum(1 for v in live.values() if not v)


def test_client_index_from_rows_skips_old_machines() -> None:
    rows = [(b"a" * 16, T0, False), (b"b" * 16, T0 - COUNT_WINDOW, False), (b"c" * 16, T0, True)]
    index = ClientIndex.from_rows(rows, now=T0)
    assert index.count(T0) == 2 and index.count(T0, count_vms=False) == 1
    assert index.count(T0 + COUNT_WINDOW) == 0


# -- a batch that never reached the store leaves the count -------------------


def test_forgetting_decisions_takes_their_machines_back_out_of_the_count() -> None:
    core = make_test_host(VENDOR, CAT)
    for i in range(4):
        core.decide_frame(wire.encode(request(i, sku=SERVER.id)), now=T0)
    vm_renewal = core.decide_frame(wire.encode(request(1, sku=SERVER.id, vm=True)), now=T0 + 9)
    fifth = core.decide_frame(wire.encode(request(4, sku=SERVER.id)), now=T0 + 9)
    assert fifth.must_commit and fifth.reply.count == 5  # type: ignore[union-attr]
    # The batch holding the renewal and the fifth machine failed to commit.
    core.forget([d.touched for d in (vm_renewal, fifth) if d.touched is not None])
    assert core.count(T0 + 9) == 4
    assert core.index.last_seen(bytes(uuid.UUID(int=2).bytes)) == T0
    assert core.index.count(T0 + 9, count_vms=False) == 4  # machine 1 is physical again
    # Asked again, the fifth machine is granted with the same count.
    again = core.decide_frame(wire.encode(request(4, sku=SERVER.id)), now=T0 + 10)
    assert again.must_commit and again.reply.count == 5  # type: ignore[union-attr]
    # Machine 1 leaves the count 30 days after its committed contact, not the
    # forgotten one; only the fifth machine (seen at T0 + 10) is left.
    assert core.count(T0 + COUNT_WINDOW) == 1


def test_refusals_are_forgotten_too_and_skewed_requests_touch_nothing() -> None:
    core = make_test_host(VENDOR, CAT)
    refused = core.decide_frame(wire.encode(request(1)), now=T0)
    assert refused.touched is not None and core.count(T0) == 1
    skewed = core.decide_frame(wire.encode(request(2, now=T0 - 5 * 3600)), now=T0)
    assert skewed.record is not None and skewed.touched is None
    core.forget([refused.touched])
    assert core.count(T0) == 0


def test_an_undone_renewal_does_not_stretch_a_machines_30_days() -> None:
    index = ClientIndex()
    a = b"a" * 16
    index.touch(a, 0, False)
    index.touch(a, 20 * DAY, False)  # committed renewal; the heap still says day 0
    lost = index.touch(a, 31 * DAY, False)
    assert index.count(31 * DAY) == 1  # expiry refreshes the heap entry to day 31
    index.undo([lost])
    assert index.last_seen(a) == 20 * DAY
    assert index.count(50 * DAY - 1) == 1
    assert index.count(50 * DAY) == 0  # 30 days after day 20, not after day 31


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(st.integers(0, 7), st.booleans()), min_size=1, max_size=6),
            st.integers(0, 20 * DAY),
            st.booleans(),
        ),
        min_size=1,
        max_size=25,
    ),
    st.integers(0, 60 * DAY),
)
def test_client_index_with_failed_batches_matches_a_naive_count(
    batches: list[tuple[list[tuple[int, bool]], int, bool]], probe: int
) -> None:
    """Batches of touches in time order, some undone (a failed commit): the index
    agrees with counting only the committed ones, at every step and at the end."""
    index = ClientIndex()
    committed: dict[int, tuple[int, bool]] = {}
    now = 0
    for touches, step, ok in batches:
        now += step
        done = []
        for m, vm in touches:
            done.append(index.touch(bytes([m]) * 16, now, vm))
            index.count(now)  # as the core does: expiry runs between touch and undo
        if ok:
            for m, vm in touches:
                committed[m] = (now, vm)
        else:
            index.undo(done)
        live = {m: v for m, (t, v) in committed.items() if t > now - COUNT_WINDOW}
        assert index.count(now) == len(live)
        assert index.count(now, count_vms=False) == sum(1 for v in live.values() if not v)
    end = now + probe
    live = {m: v for m, (t, v) in committed.items() if t > end - COUNT_WINDOW}
    assert index.count(end) == len(live)
    assert index.count(end, count_vms=False) == sum(1 for v in live.values() if not v)


# -- garbage connections: at most one event per address per minute ----------


def _n(message: str) -> int:
    return int(message.split()[0])


def test_malformed_connections_are_logged_once_a_minute_per_address() -> None:
    log = MalformedLog()
    rows = log.add(T0, "192.0.2.1", "garbage")
    assert rows == [(T0, "192.0.2.1", "1 connection: garbage")]
    # Within the minute: counted, not logged (another address is logged at once).
    for i in range(1, 60):
        assert log.add(T0 + i // 2, "192.0.2.1", f"garbage {i}") == []
    assert log.add(T0 + 5, "192.0.2.2", "slow") == [(T0 + 5, "192.0.2.2", "1 connection: slow")]
    assert log.due(T0 + 59) == []
    # The minute ends: one event for the 59 that followed; the next minute opens.
    rows = log.due(T0 + 60)
    assert rows == [(T0 + 60, "192.0.2.1", "59 connections in 60 s, the last: garbage 59")]
    assert log.add(T0 + 61, "192.0.2.1", "more") == []
    # 192.0.2.2 had a quiet minute: its window closes with no event.
    assert log.due(T0 + 65) == [] and len(log) == 1
    assert log.add(T0 + 66, "192.0.2.2", "again") == [(T0 + 66, "192.0.2.2", "1 connection: again")]
    assert log.drain(T0 + 70) == [(T0 + 70, "192.0.2.1", "1 connection in 10 s, the last: more")]
    assert len(log) == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40)), min_size=1, max_size=200))
def test_malformed_log_bounds_events_and_accounts_for_every_connection(
    arrivals: list[tuple[int, int]],
) -> None:
    log = MalformedLog(max_addresses=100)
    now = T0
    events: list[tuple[int, str, str]] = []
    for address, step in arrivals:
        now += step
        events += log.add(now, f"192.0.2.{address}", "garbage")
    events += log.drain(now)
    assert sum(_n(m) for _, _, m in events) == len(arrivals)
    for address in {a for _, a, _ in events}:
        times = [t for t, a, _ in events if a == address]
        # Apart from the summary written at stop, one event per address per minute.
        assert all(b - a >= 60 for a, b in itertools.pairwise(times[:-1]))
    assert [t for t, _, _ in events] == sorted(t for t, _, _ in events)


def test_malformed_log_keeps_a_bounded_number_of_windows() -> None:
    log = MalformedLog(max_addresses=3)
    for i in range(3):
        log.add(T0, f"192.0.2.{i}", "x")
        log.add(T0, f"192.0.2.{i}", "y")
    rows = log.add(T0 + 1, "192.0.2.9", "z")
    assert len(log) == 3
    assert rows == [
        (T0 + 1, "192.0.2.0", "1 connection in 1 s, the last: y"),
        (T0 + 1, "192.0.2.9", "1 connection: z"),
    ]


# -- installing a host license -------------------------------------------------


def test_an_expired_license_is_refused_when_installed_but_served_with_its_code() -> None:
    key = SigningKey.from_seed(bytes(range(32)))
    host_id = bytes.fromhex("0123456789abcdef")
    lic = HostLicense(
        VENDOR.key_id, host_id, key.public_key, b"\x42" * 12, ("desktop",), T0, T0 + DAY
    ).sign(VENDOR)
    assert check_license(lic, host_id, key, VENDOR.public_key, now=T0 + DAY - 1).host_id == host_id
    with pytest.raises(ConfigurationError, match=r"expired 3 days ago.*activate again"):
        check_license(lic, host_id, key, VENDOR.public_key, now=T0 + 4 * DAY)
    # A host whose installed license expires keeps serving, with its own result code.
    assert check_license(lic, host_id, key, VENDOR.public_key).expires_at == T0 + DAY
