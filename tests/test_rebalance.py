"""Rebalance and drain in the sans-I/O cores, with the clock moved by hand.

The host's share selection; the version-2 ticket and its signed move hint (a
forged or stripped hint fails verification); old clients and old hosts; and the
client's move: the host that asked is tried last, and no client is ever
unlicensed, whatever the new host does (not activated, SKU not covered, down,
still counting, or the move stopped half way). Clients run the real client API
over the in-memory network of ``client_support`` (no sockets).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from client_support import CATALOG, DAY, DESKTOP, T0, VENDOR, Clock, Network, fill
from volact.client.api import Activation
from volact.client.machine import Machine
from volact.client.planner import move_order
from volact.client.srv import HostAddress, SrvRecord
from volact.documents import ActivationTicket, verify_ticket
from volact.errors import ConfigurationError, DecodeError, UsageError, VerificationError
from volact.host.policy import HostCore
from volact.host.rebalance import (
    FULL_SHARE,
    Rebalance,
    bucket,
    selects,
    share_from_percent,
)
from volact.host.rebalance_file import FileWatch, load_rebalance, save_rebalance
from volact.keys import KeyKind
from volact.signing import SigningKey
from volact.testing.hosts import make_test_host
from volact.wire import (
    ActivateReply,
    ActivateRequest,
    LicenseState,
    Result,
    decode,
    encode,
)

DOMAIN = "corp.example"
SRV_NAME = f"_volact._tcp.{DOMAIN}"
A_ID = bytes.fromhex("aaaaaaaaaaaaaaaa")
B_ID = bytes.fromhex("bbbbbbbbbbbbbbbb")
MINUTE = 60


# ---- the host's choice -------------------------------------------------------------


def test_share_is_exact_in_expectation_stable_and_grows_monotonically() -> None:
    cmids = [uuid.UUID(bytes=os.urandom(16)).bytes for _ in range(20_000)]
    for share, p in ((5000, 0.5), (2500, 0.25), (100, 0.01)):
        n = sum(selects(c, A_ID, share) for c in cmids)
        sd = (len(cmids) * p * (1 - p)) ** 0.5
        assert abs(n - len(cmids) * p) < 5 * sd
    assert all(selects(c, A_ID, FULL_SHARE) for c in cmids)
    # Same machines every time; a larger share only adds machines.
    half = {c for c in cmids if selects(c, A_ID, 5000)}
    assert half == {c for c in cmids if selects(c, A_ID, 5000)}
    assert half <= {c for c in cmids if selects(c, A_ID, 7500)}
    # Another host chooses another subset (a moved client is not B's chosen one by birth).
    other = {c for c in cmids if selects(c, B_ID, 5000)}
    assert 0.4 < len(half & other) / len(half) < 0.6
    assert all(0 <= bucket(c, A_ID) < FULL_SHARE for c in cmids[:100])


def test_share_parsing_refuses_what_is_not_a_share() -> None:
    assert share_from_percent(50) == 5000
    assert share_from_percent(0.01) == 1
    assert share_from_percent(100) == FULL_SHARE
    for bad in (0, -1, 100.5, 0.001, float("nan"), float("inf"), True):
        with pytest.raises(ConfigurationError):
            share_from_percent(bad)


def test_setting_file_round_trip_and_watch(tmp_path: Path) -> None:
    watch = FileWatch(tmp_path / "rebalance.json")
    assert not watch.changed() and load_rebalance(tmp_path) is None
    save_rebalance(tmp_path, Rebalance(5000, T0))
    assert watch.changed() and not watch.changed()
    assert load_rebalance(tmp_path) == Rebalance(5000, T0)
    save_rebalance(tmp_path, Rebalance(FULL_SHARE, T0 + 1))
    assert watch.changed()
    assert load_rebalance(tmp_path) == Rebalance(FULL_SHARE, T0 + 1)
    save_rebalance(tmp_path, None)
    assert watch.changed() and load_rebalance(tmp_path) is None
    (tmp_path / "rebalance.json").write_text(
        '{"format": "volact-host-rebalance", "version": 1, "share": 250, "since": 1}'
    )
    with pytest.raises(ConfigurationError, match="at most 100"):
        load_rebalance(tmp_path)
    (tmp_path / "rebalance.json").write_bytes(b"\xff\x00")
    with pytest.raises(ConfigurationError):
        load_rebalance(tmp_path)


# ---- the signed hint -----------------------------------------------------------------


def _host(host_id: bytes = A_ID, seed: int = 1, **kw: object) -> HostCore:
    key = SigningKey.from_seed(bytes([seed]) * 32)
    return make_test_host(VENDOR, CATALOG, host_id=host_id, host_key=key, **kw)  # type: ignore[arg-type]


def _request(cmid: uuid.UUID, version: int = 2, t: int = T0) -> ActivateRequest:
    return ActivateRequest(
        DESKTOP.id, cmid, os.urandom(16), t, LicenseState.LICENSED, 1000, False, "pc", version
    )


def _selected_cmid(host_id: bytes, share: int, want: bool) -> uuid.UUID:
    while True:
        c = uuid.uuid4()
        if selects(c.bytes, host_id, share) is want:
            return c


def test_a_rebalancing_host_grants_and_signs_the_move_only_for_chosen_v2_clients() -> None:
    core = _host()
    fill(core, 30, T0)
    core.rebalance = Rebalance(5000, T0)
    lic = core.license
    assert lic is not None
    for want in (True, False):
        cmid = _selected_cmid(A_ID, 5000, want)
        req = _request(cmid)
        frame = core.handle_frame(encode(req), now=T0)
        assert len(frame) == 180 < 200
        reply = decode(frame)
        assert isinstance(reply, ActivateReply) and reply.result is Result.OK
        assert reply.version == 2 and reply.ticket is not None
        t = verify_ticket(reply.ticket, lic, CATALOG, cmid=cmid, nonce=req.nonce)
        assert t.version == 2 and t.move is want
        d = core.decide_frame(encode(_request(cmid)), now=T0 + 1)
        assert d.record is not None and d.record.moved is want
    # A version-1 client is never asked (it could not read the ticket): 179 bytes, v1.
    cmid = _selected_cmid(A_ID, 5000, True)
    req = _request(cmid, version=1)
    frame = core.handle_frame(encode(req), now=T0)
    reply = decode(frame)
    assert isinstance(reply, ActivateReply) and reply.version == 1 and len(frame) == 179
    assert reply.ticket is not None
    t = verify_ticket(reply.ticket, lic, CATALOG, cmid=cmid, nonce=req.nonce)
    assert t.version == 1 and not t.move


def test_a_forged_or_stripped_move_hint_fails_verification() -> None:
    core = _host()
    fill(core, 30, T0)
    lic = core.license
    assert lic is not None
    for share, want in ((FULL_SHARE, True), (None, False)):
        core.rebalance = None if share is None else Rebalance(share, T0)
        cmid = uuid.uuid4()
        req = _request(cmid)
        reply = decode(core.handle_frame(encode(req), now=T0))
        assert isinstance(reply, ActivateReply) and reply.ticket is not None
        ticket = bytearray(reply.ticket)
        assert ticket[86] == (1 if want else 0)  # the flags byte, inside the signed body
        ticket[86] ^= 1  # strip the hint, or forge one
        with pytest.raises(VerificationError):
            verify_ticket(bytes(ticket), lic, CATALOG, cmid=cmid, nonce=req.nonce)
        # Passing the ticket off as version 1 (drop the flags byte) breaks the signature too.
        body, sig = bytes(reply.ticket[:86]), reply.ticket[87:]
        v1 = bytearray(body + sig)
        v1[1] = 1
        with pytest.raises(VerificationError):
            verify_ticket(bytes(v1), lic, CATALOG, cmid=cmid, nonce=req.nonce)
        # Unknown flag bits are malformed, not ignored.
        ticket[86] = 0x80
        with pytest.raises(DecodeError):
            ActivationTicket.decode(bytes(ticket))
    with pytest.raises(UsageError):
        ActivationTicket(uuid.uuid4(), DESKTOP.id, bytes(16), A_ID, 0, 1, 120, 1, 1, move=True)


def test_unknown_versions_get_unsupported_version_in_version_1_with_the_count() -> None:
    core = _host()
    fill(core, 7, T0)
    frame = bytearray(encode(_request(uuid.uuid4())))
    frame[2] = 3
    reply = decode(core.handle_frame(bytes(frame), now=T0))
    assert isinstance(reply, ActivateReply)
    assert (reply.result, reply.version, reply.count) == (Result.UNSUPPORTED_VERSION, 1, 7)


def test_refusals_before_counting_carry_the_count_and_what_is_known() -> None:
    core = _host()
    fill(core, 7, T0)
    skewed = decode(core.handle_frame(encode(_request(uuid.uuid4(), t=T0 - 5 * 3600)), now=T0))
    assert isinstance(skewed, ActivateReply) and skewed.result is Result.CLOCK_SKEW
    assert (skewed.count, skewed.required, skewed.version) == (7, 25, 2)
    unknown = ActivateRequest(uuid.uuid4(), uuid.uuid4(), bytes(16), T0, LicenseState.GRACE, 0,
                              False, "pc", 2)  # fmt: skip
    reply = decode(core.handle_frame(encode(unknown), now=T0))
    assert isinstance(reply, ActivateReply) and reply.result is Result.UNKNOWN_SKU
    assert (reply.count, reply.required) == (7, 0)
    assert core.count(T0) == 7  # neither was counted


# ---- the client side, pure ------------------------------------------------------------


def test_move_order_puts_the_host_that_asked_last() -> None:
    a, b, c = HostAddress("a.corp.example"), HostAddress("b.corp.example"), HostAddress("c")
    assert move_order([a, b, c], HostAddress("A.corp.example.")) == [
        b,
        c,
        HostAddress("A.corp.example."),
    ]
    assert move_order([b], a) == [b, a]
    assert move_order([a, b], None) == [a, b]


def test_machine_moves_at_the_next_retry_and_keeps_validity_through_failures() -> None:
    m = Machine().install(T0, DESKTOP.id, KeyKind.GVLK)
    until = T0 + 180 * DAY
    m = m.succeeded(T0, valid_until=until, activation_interval=120, renewal_interval=10080,
                    move_from="a:1688")  # fmt: skip
    assert m.moving_from == "a:1688" and m.next_action_at(T0) == T0 + 120 * MINUTE
    m = m.failed(T0 + 120 * MINUTE)
    assert m.moving_from == "a:1688" and m.valid_until == until and m.activated(T0 + DAY)
    m = m.count_too_low(T0 + 240 * MINUTE, activation_interval=120)
    assert m.moving_from == "a:1688" and m.valid_until == until
    m = m.succeeded(T0 + DAY, valid_until=until + DAY, activation_interval=120,
                    renewal_interval=10080)  # fmt: skip
    assert m.moving_from is None and m.next_action_at(T0 + DAY) == T0 + DAY + 10080 * MINUTE


# ---- clients and hosts together ---------------------------------------------------------


class Fleet:
    """Hosts A and B in memory, clients found through SRV in ``corp.example``."""

    def __init__(self, tmp_path: Path, *, b: HostCore | None = None, n: int = 1) -> None:
        self.clock = Clock()
        self.net = Network(self.clock)
        self.a_addr = self.net.add_host("a.corp.example", _host(A_ID, 1))
        self.a = self.net.core(self.a_addr)
        fill(self.a, 30, T0)  # A is past every threshold
        self.net.srv[SRV_NAME] = [SrvRecord(0, 0, 1688, "a.corp.example")]
        self.clients = [
            self.net.activation(tmp_path / f"c{i}", seed=i, search_domains=[DOMAIN])
            for i in range(n)
        ]
        for c in self.clients:
            assert c.activate().state == "licensed"
        self.b_addr = HostAddress("b.corp.example")
        if b is not None:
            self.net.hosts[self.b_addr] = b
        self.net.srv[SRV_NAME].append(SrvRecord(0, 0, 1688, "b.corp.example"))

    def host_of(self, c: Activation) -> bytes:
        state = c.load()
        assert state.ticket is not None
        return ActivationTicket.decode(state.ticket)[0].host_id

    def step(self, seconds: int) -> None:
        """Move the clock; every client acts if due; none may be unlicensed, ever."""
        self.clock.advance(seconds)
        for c in self.clients:
            status, _ = c.tick()
            assert status.state == "licensed", status.to_json()

    def cmid(self, c: Activation) -> bytes:
        return c.load().cmid.bytes


def test_half_the_fleet_moves_to_b_exactly_the_chosen_half(tmp_path: Path) -> None:
    b = _host(B_ID, 2)
    fill(b, 15, T0)  # B serves 15 machines of its own: the movers take it past 25
    f = Fleet(tmp_path, b=b, n=40)
    f.a.rebalance = Rebalance(5000, T0)
    chosen = {f.cmid(c) for c in f.clients if selects(f.cmid(c), A_ID, 5000)}
    assert 10 <= len(chosen) <= 30
    f.step(7 * DAY)  # renewals at A: the chosen are told
    for _ in range(3):  # retries every 2 h; B counts its way up to 25
        f.step(120 * MINUTE)
    on_b = {f.cmid(c) for c in f.clients if f.host_of(c) == B_ID}
    assert on_b == chosen
    f.step(7 * DAY)  # and they stay where they are
    assert {f.cmid(c) for c in f.clients if f.host_of(c) == B_ID} == chosen


def test_movers_stay_licensed_while_b_counts_up_then_move(tmp_path: Path) -> None:
    b = _host(B_ID, 2)
    fill(b, 20, T0)  # B has 20 of its 25
    f = Fleet(tmp_path, b=b, n=8)
    f.a.rebalance = Rebalance(FULL_SHARE, T0)  # drain A
    f.step(7 * DAY)
    # Every client says it is moving, and from where (`client status` shows it).
    assert {c.status().moving_from for c in f.clients} == {str(f.a_addr)}
    f.step(120 * MINUTE)  # each asks B (count too low for the first four), then A
    f.step(120 * MINUTE)  # B now counts 28: all move
    assert all(f.host_of(c) == B_ID for c in f.clients)
    assert all(c.load().machine.moving_from is None for c in f.clients)
    assert all(c.status().moving_from is None for c in f.clients)
    f.step(7 * DAY)
    assert all(f.host_of(c) == B_ID for c in f.clients)


@pytest.mark.parametrize(
    "b_kind", ["not_activated", "sku_not_covered", "down", "absent", "garbage"]
)
def test_a_move_to_a_broken_new_host_keeps_the_client_with_the_old_one(
    tmp_path: Path, b_kind: str
) -> None:
    b: HostCore | None = None
    if b_kind == "not_activated":
        b = _host(B_ID, 2, activated=False)
    elif b_kind == "sku_not_covered":
        b = _host(B_ID, 2, groups=("server",))
    elif b_kind != "absent":
        b = _host(B_ID, 2)
    f = Fleet(tmp_path, b=b, n=2)
    if b_kind == "down":
        f.net.down.add(f.b_addr)
    elif b_kind == "garbage":
        f.net.hosts[f.b_addr] = lambda frame: b"\x00\x02\x01\x02"
    elif b_kind == "absent":
        f.net.srv[SRV_NAME] = f.net.srv[SRV_NAME][:1]  # A is the only host left
    f.a.rebalance = Rebalance(FULL_SHARE, T0)
    f.step(7 * DAY)
    for _ in range(3):
        f.step(120 * MINUTE)
        for c in f.clients:
            assert f.host_of(c) == A_ID
            assert c.load().machine.moving_from == "a.corp.example:1688"
            assert c.load().last is not None and c.load().last.result == "ok"  # type: ignore[union-attr]
    # The new host becomes usable: the clients move at their next retry.
    f.net.down.clear()
    f.net.srv[SRV_NAME] = [SrvRecord(0, 0, 1688, "a.corp.example"),
                           SrvRecord(0, 0, 1688, "b.corp.example")]  # fmt: skip
    good = _host(B_ID, 2)
    fill(good, 30, T0)
    f.net.hosts[f.b_addr] = good
    f.step(120 * MINUTE)
    assert all(f.host_of(c) == B_ID for c in f.clients)


def test_a_move_stopped_half_way_ends_at_the_next_grant_from_the_old_host(
    tmp_path: Path,
) -> None:
    f = Fleet(tmp_path, b=_host(B_ID, 2), n=2)
    f.a.rebalance = Rebalance(FULL_SHARE, T0)
    f.step(7 * DAY)  # told
    f.a.rebalance = None  # the administrator stops; B goes down before the clients move
    f.net.down.add(f.b_addr)
    f.step(120 * MINUTE)
    for c in f.clients:
        m = c.load().machine
        assert f.host_of(c) == A_ID and m.moving_from is None
        assert m.next_action_at(int(f.clock())) == int(f.clock()) + 10080 * MINUTE
    f.net.down.clear()
    f.step(7 * DAY)
    assert all(f.host_of(c) == A_ID for c in f.clients)  # back to renewing with A


def test_a_manual_host_ignores_move_hints(tmp_path: Path) -> None:
    f = Fleet(tmp_path, b=_host(B_ID, 2), n=1)
    c = f.clients[0]
    c.set_host("a.corp.example")
    f.a.rebalance = Rebalance(FULL_SHARE, T0)
    f.step(7 * DAY)
    assert c.load().machine.moving_from is None
    assert c.load().machine.next_action_at(int(f.clock())) == int(f.clock()) + 10080 * MINUTE


def test_a_new_client_falls_back_to_version_1_with_an_old_host(tmp_path: Path) -> None:
    clock = Clock()
    net = Network(clock)
    core = _host(A_ID, 1)
    fill(core, 30, T0)
    seen: list[int] = []

    def old_host(frame: bytes) -> bytes:
        # A host from before version 2 answers UNSUPPORTED_VERSION to anything else.
        seen.append(frame[2])
        if frame[2] != 1 and frame[3] == 1:
            return encode(ActivateReply(Result.UNSUPPORTED_VERSION, 0, 0, 120, 10080, bytes(8)))
        return core.handle_frame(frame, now=int(clock()))

    net.hosts[HostAddress("old.corp.example")] = old_host
    act = net.activation(tmp_path / "c")
    act.set_host("old.corp.example")
    assert act.activate().state == "licensed"
    assert seen[:2] == [2, 1]
    state = act.load()
    assert state.ticket is not None and ActivationTicket.decode(state.ticket)[0].version == 1
