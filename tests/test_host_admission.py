"""Floods against the host, sans-I/O: connection slots, the count's cap, new machines per network.

Issue 11 items 1 and 2. The policies are tested in memory here; the same attacks
over real sockets are in ``tests/test_host_attacks.py``.
"""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from volact import wire
from volact.catalog import demo_catalog
from volact.errors import CountFull
from volact.host.admission import NewMachines, Slots, is_loopback, network_of
from volact.host.client_index import ClientIndex
from volact.host.policy import HostCore
from volact.signing import SigningKey
from volact.testing.hosts import make_test_host
from volact.wire import ActivateReply, ActivateRequest, LicenseState, Result

CAT = demo_catalog()
VENDOR = SigningKey.from_seed(b"\x09" * 32)
DESKTOP = CAT.sku("Professional")
T0 = 1_800_000_000
HOUR = 3600


# -- networks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, network",
    [
        ("192.0.2.77", "192.0.2.0/24"),
        ("10.1.2.3", "10.1.2.0/24"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:192.0.2.9", "192.0.2.0/24"),
        ("not an address", "not an address"),
        ("", ""),
    ],
)
def test_network_of(address: str, network: str) -> None:
    assert network_of(address) == network


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.3.4.5") and is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("10.0.0.1") and not is_loopback("2001:db8::1")
    assert not is_loopback("junk")


# -- connection slots ----------------------------------------------------------------


def test_a_full_table_admits_a_newcomer_by_evicting_the_oldest_idle_of_the_busiest_network() -> (
    None
):
    slots: Slots[str] = Slots(total=8, per_address=4)
    for i in range(4):
        assert slots.admit(f"a{i}", "10.0.1.1") == []  # the attacker: one network
    for i in range(3):
        assert slots.admit(f"b{i}", f"10.0.2.{i}") == []  # a second network
    assert slots.admit("c0", "10.0.3.1") == []
    slots.busy("a0")  # a request in progress: not evictable
    assert len(slots) == 8 and slots.under_pressure
    # Full: the newcomer gets a slot, the oldest idle connection of 10.0.1.0/24 goes.
    assert slots.admit("legit", "192.0.2.1") == ["a1"]
    assert slots.evicted == 1 and len(slots) == 8 and not slots.is_idle("a1")
    slots.busy("legit")  # it sent its request at once
    # 10.0.1.0/24 and 10.0.2.0/24 now hold two and three idle connections.
    assert slots.admit("legit2", "192.0.2.2") == ["b0"]
    slots.busy("legit2")
    assert slots.admit("legit3", "192.0.2.3") == ["a2"]  # a tie: the first network
    # A newcomer from the network with the most idle connections is refused: it
    # would only evict its own kind (an attacker reconnecting as fast as it can).
    assert slots.admit("b9", "10.0.2.9") is None  # 10.0.2.0/24 holds b1, b2


def test_busy_connections_are_never_evicted_and_a_host_busy_everywhere_refuses() -> None:
    slots: Slots[str] = Slots(total=3)
    for c in ("x", "y", "z"):
        assert slots.admit(c, "10.0.0.1") == []
        slots.busy(c)
    assert slots.admit("new", "10.9.9.9") is None
    slots.release("y")
    assert slots.admit("new", "10.9.9.9") == []


def test_per_address_and_per_network_shares() -> None:
    slots: Slots[str] = Slots(total=100, per_address=2, per_network=3)
    assert slots.admit("a", "10.0.0.1") == [] and slots.admit("b", "10.0.0.1") == []
    assert slots.admit("c", "10.0.0.1") is None  # the address has its share
    assert slots.admit("d", "10.0.0.2") == []
    # The network has its share: its own oldest idle connection makes room, once it
    # has been idle a second (else a reconnecting attacker would evict itself in a loop).
    assert slots.admit("e", "10.0.0.3", now=0.5) is None
    assert slots.admit("e", "10.0.0.3", now=1.0) == ["a"]
    for c in ("b", "d", "e"):
        slots.busy(c)
    assert slots.admit("f", "10.0.0.4", now=9.0) is None  # ...unless every one is busy
    assert slots.admit("g", "10.0.1.1") == []  # another network is not affected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abrx"), st.integers(0, 11)), max_size=80))
def test_slots_bookkeeping_stays_exact(ops: list[tuple[str, int]]) -> None:
    slots: Slots[int] = Slots(total=6, per_address=3, per_network=4)
    open_: set[int] = set()
    busy: set[int] = set()
    for op, c in ops:
        addr = f"10.0.{c % 3}.{c % 2}"
        if op == "a" and c not in open_:
            evicted = slots.admit(c, addr)
            if evicted is not None:
                assert not set(evicted) & busy and set(evicted) <= open_
                open_ -= set(evicted)
                open_.add(c)
        elif op == "b" and c in open_:
            slots.busy(c)
            busy.add(c)
        elif op in "rx":
            slots.release(c)
            open_.discard(c)
            busy.discard(c)
        busy &= open_
        assert len(slots) == len(open_) <= 6
        assert all(slots.is_idle(c) == (c not in busy) for c in open_)


# -- the count's cap ------------------------------------------------------------------


def test_a_full_index_refuses_a_new_machine_and_changes_nothing() -> None:
    index = ClientIndex(capacity=3)
    for i in range(3):
        index.touch(bytes([i]) * 16, T0, False)
    assert not index.can_add()
    with pytest.raises(CountFull):
        index.touch(b"\xee" * 16, T0 + 1, True)
    assert len(index) == 3 and b"\xee" * 16 not in index  # no phantom
    assert index.count(T0 + 40 * 86_400) == 0  # and everything still expires
    index.touch(bytes([0]) * 16, T0, False)  # room again
    assert index.touch(bytes([0]) * 16, T0 + 5, False)[1] == T0  # known machines renew


def _request(i: int, *, now: int = T0) -> ActivateRequest:
    return ActivateRequest(
        DESKTOP.id, uuid.UUID(int=i + 1), os.urandom(16), now, LicenseState.GRACE, 100,
        False, f"pc-{i}",
    )  # fmt: skip


def _result(core: HostCore, i: int, address: str, now: int = T0) -> ActivateReply:
    reply = wire.decode(core.handle_frame(wire.encode(_request(i, now=now)), now=now,
                                          address=address))  # fmt: skip
    assert isinstance(reply, ActivateReply)
    return reply


def test_a_host_at_its_count_cap_answers_count_refused_without_a_phantom() -> None:
    core = make_test_host(VENDOR, CAT, max_machines=5)
    for i in range(5):
        assert _result(core, i, "10.0.0.1").result is Result.COUNT_TOO_LOW
    decision = core.decide_frame(wire.encode(_request(99)), now=T0, address="10.0.0.1")
    reply = decision.reply
    assert isinstance(reply, ActivateReply)
    assert (reply.result, reply.count, reply.required) == (Result.COUNT_REFUSED, 5, 25)
    assert decision.record is None and decision.touched is None  # nothing to persist
    assert core.count(T0) == 5 and uuid.UUID(int=100).bytes not in core.index
    assert core.refused_new == {"full": 1, "rate": 0}
    # Machines already counted still renew.
    assert _result(core, 3, "10.0.0.1", now=T0 + 60).result is Result.COUNT_TOO_LOW
    # One event for the flood, at most once a minute, naming the network.
    events = core.flood_events(T0)
    assert len(events) == 1 and events[0][1] == "count_flood"
    assert "1 machine new to the count refused" in events[0][2]
    assert "10.0.0.0/24 (1)" in events[0][2] and "count is full" in events[0][2]
    _result(core, 100, "10.0.0.1")
    assert core.flood_events(T0 + 30) == []
    assert "1 machine" in core.flood_events(T0 + 60)[0][2]
    assert core.flood_events(T0 + 200) == []  # nothing new: nothing to say


def test_one_network_adds_only_so_many_new_machines_an_hour() -> None:
    core = make_test_host(VENDOR, CAT, new_machines_per_hour=10)
    results = [_result(core, i, f"10.0.0.{i % 200}").result for i in range(15)]
    assert results.count(Result.COUNT_TOO_LOW) == 10
    assert results[10:] == [Result.COUNT_REFUSED] * 5
    assert core.count(T0) == 10 and core.refused_new == {"full": 0, "rate": 5}
    # Another network, a loopback client, an in-process caller: not limited.
    assert _result(core, 50, "10.0.1.1").result is Result.COUNT_TOO_LOW
    assert _result(core, 51, "2001:db8::1").result is Result.COUNT_TOO_LOW
    assert _result(core, 52, "127.0.0.1").result is Result.COUNT_TOO_LOW
    assert _result(core, 53, "").result is Result.COUNT_TOO_LOW
    # Known machines renew whatever the rate; an hour later the network may add more.
    assert _result(core, 3, "10.0.0.3", now=T0 + 10).result is Result.COUNT_TOO_LOW
    assert _result(core, 60, "10.0.0.9", now=T0 + 60).result is Result.COUNT_REFUSED
    assert _result(core, 61, "10.0.0.9", now=T0 + HOUR).result is Result.COUNT_TOO_LOW
    # An IPv6 /64 is one network however many addresses it uses.
    v6 = [_result(core, 100 + i, f"2001:db8:0:7::{i:x}").result for i in range(12)]
    assert v6.count(Result.COUNT_REFUSED) == 2


def test_the_rate_limiter_forgets_the_oldest_network_past_its_bound() -> None:
    limiter = NewMachines(per_hour=1, max_networks=3)
    assert all(limiter.allow(f"10.0.{i}.1", T0) for i in range(3))
    assert not limiter.allow("10.0.0.2", T0)
    assert limiter.allow("10.0.9.1", T0)  # a fourth network: the oldest is forgotten
    assert len(limiter._buckets) == 3


def test_count_refused_is_a_documented_result_code() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    assert Result.COUNT_REFUSED == 10 and "`COUNT_REFUSED`" in doc
