"""A client home on disk: atomic writes, the event log, a damaged or tampered file met
by an :class:`Activation`, a home copied to another machine, revocation lists kept.
The state's codec and trust rules alone are tested in memory in test_client_state.py."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from client_support import (
    CATALOG,
    DAY,
    PROFILE,
    SERVER,
    T0,
    VENDOR,
    Clock,
    Network,
    fill,
    make_profile,
)  # fmt: skip
from volact.client.api import Activation
from volact.client.srv import SrvRecord
from volact.client.state import decode_state, reverify
from volact.client.store import ClientStore
from volact.errors import ConfigurationError, StoreError, VerificationError
from volact.signing import SigningKey
from volact.testing.hosts import make_test_host

DOMAIN = "corp.example"


def licensed(tmp_path: Path) -> tuple[Activation, Clock]:
    clock = Clock()
    net = Network(clock)
    core = make_test_host(VENDOR, CATALOG)
    fill(core, 4, T0)
    addr = net.add_host("kms.corp.example", core)
    net.srv[f"_volact._tcp.{DOMAIN}"] = [SrvRecord(0, 0, 1688, addr.host)]
    act = net.activation(tmp_path / "m", sku=SERVER.name)
    act.set_domain(DOMAIN)
    assert act.activate().activated
    return act, clock


def rewrite_body(path: Path, edit: object) -> None:
    """Edit the JSON body and recompute the checksum line (a careful attacker)."""
    data = path.read_bytes()
    _, _, body = data.partition(b"\n")
    obj = json.loads(body)
    edit(obj)  # type: ignore[operator]
    new = json.dumps(obj, indent=2, sort_keys=True).encode() + b"\n"
    head = f"volact-client-state 1 {hashlib.sha256(new).hexdigest()}\n".encode()
    path.write_bytes(head + new)


def test_a_tampered_ticket_is_dropped_with_a_reason(tmp_path: Path) -> None:
    act, _ = licensed(tmp_path)
    state = act.load()
    assert state.ticket is not None
    bad = bytearray(state.ticket)
    bad[40] ^= 0xFF  # inside the signed body (the validity date)
    import base64

    rewrite_body(
        act.store.state_path, lambda o: o.__setitem__("ticket", base64.b64encode(bad).decode())
    )
    st = act.status()
    assert not st.activated and st.state == "grace"
    assert "stored activation ticket was refused" in (st.last_error or "")
    # The next write drops it for good and logs why.
    act.set_host_caching(True)
    assert act.load().ticket is None
    assert any(e["event"] == "stored_state_refused" for e in act.events())


def test_a_crash_mid_write_leaves_the_old_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    act, _ = licensed(tmp_path)
    before = act.store.state_path.read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StoreError, match="No space left"):
        act.set_domain("elsewhere.example")
    monkeypatch.undo()
    assert act.store.state_path.read_bytes() == before
    assert act.status().domain == DOMAIN
    assert not [p for p in act.store.home.iterdir() if p.name.endswith(".tmp")]


def test_the_file_holds_the_encoded_state_and_the_log_rotates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    act, _ = licensed(tmp_path)
    state = act.load()
    assert reverify(decode_state(act.store.state_path.read_bytes()), PROFILE) == state
    import volact.client.store as store_mod

    monkeypatch.setattr(store_mod, "EVENTS_MAX_BYTES", 200)
    store = ClientStore(act.store.home)
    for i in range(20):
        store.append_event({"event": "x", "i": i})
    assert (act.store.home / "events.jsonl.1").exists()
    events = store.events()
    assert events[-1] == {"event": "x", "i": 19}
    assert store.events(limit=3) == events[-3:]


def test_not_a_home_says_how_to_make_one(tmp_path: Path) -> None:
    from volact.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="client init"):
        ClientStore(tmp_path / "nope").read_raw()


# ---- a home copied to another machine ----------------------------------------------


def _network(clock: Clock) -> Network:
    net = Network(clock)
    core = make_test_host(VENDOR, CATALOG)
    fill(core, 4, T0)
    addr = net.add_host("kms.corp.example", core)
    net.srv[f"_volact._tcp.{DOMAIN}"] = [SrvRecord(0, 0, 1688, addr.host)]
    return net


def test_a_home_copied_to_another_machine_is_rearmed(tmp_path: Path) -> None:
    import shutil

    from volact.client.state import MOVED_NOTICE

    clock = Clock()
    net = _network(clock)
    a = net.activation(tmp_path / "a", sku=SERVER.name, machine_id=lambda: "machine-a")
    a.set_domain(DOMAIN)
    assert a.activate().activated
    original = a.load()
    text = a.store.state_path.read_text()
    assert "machine-a" not in text and original.machine_fingerprint in text
    clock.advance(DAY)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b = net.activation(tmp_path / "b", sku=SERVER.name, machine_id=lambda: "machine-b")
    st = b.status()
    assert not st.activated and st.state == "grace" and st.grace_until == T0 + DAY + 30 * DAY
    assert st.cmid != str(original.cmid) and st.last_error == MOVED_NOTICE
    assert st.key_kind == "gvlk" and st.cached_host is None
    assert b.load().ticket is None and "machine-b" not in b.store.state_path.read_text()
    assert b.status().cmid == st.cmid  # re-armed once, and saved
    assert [e["event"] for e in b.events()].count("home_moved") == 1
    # It activates again under its own CMID; the original machine is untouched.
    assert b.activate().activated
    assert a.status().activated and a.status().cmid == str(original.cmid)


def test_the_same_machine_keeps_its_home_and_old_homes_adopt_a_fingerprint(
    tmp_path: Path,
) -> None:
    clock = Clock()
    net = _network(clock)
    a = net.activation(tmp_path / "a", sku=SERVER.name, machine_id=lambda: "machine-a")
    a.set_domain(DOMAIN)
    assert a.activate().activated
    again = net.activation(tmp_path / "a", machine_id=lambda: "machine-a")
    assert again.status().activated and again.status().last_error is None
    # A home written before fingerprints existed is not re-armed; it records this machine's.
    rewrite_body(a.store.state_path, lambda o: o.pop("machine_fingerprint"))
    old = net.activation(tmp_path / "a", machine_id=lambda: "machine-c")
    assert old.status().activated
    old.set_host_caching(True)  # any write records the fingerprint
    assert old.load().machine_fingerprint is not None
    assert not net.activation(tmp_path / "a", machine_id=lambda: "machine-a").status().activated


def test_a_copied_mak_home_loses_its_permanent_activation(tmp_path: Path) -> None:
    from volact.documents import MakConfirmation, installation_id
    from volact.exchanges import MakResponse
    from volact.keys import KeyKind, ProductKey

    clock = Clock()
    net = Network(clock)
    a = net.activation(tmp_path / "a", sku=None, machine_id=lambda: "machine-a")
    mak = ProductKey.generate(KeyKind.MAK, bytes(range(12)))
    a.install_key(mak.text, sku=SERVER.name)
    s = a.load()
    conf = MakConfirmation(VENDOR.key_id, mak.serial, s.cmid, SERVER.id,
                           installation_id(s.cmid, SERVER.id), T0).sign(VENDOR)  # fmt: skip
    assert a.mak_apply(MakResponse(s.cmid, conf)).permanent
    import shutil

    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b = net.activation(tmp_path / "b", machine_id=lambda: "machine-b")
    st = b.status()
    assert not st.permanent and st.state == "grace" and st.key_kind == "mak"
    assert b.load().mak_confirmation is None


def test_the_machine_id_sources_in_order(tmp_path: Path) -> None:
    from volact.client.identity import machine_fingerprint, read_machine_id

    first, second = tmp_path / "machine-id", tmp_path / "dbus-id"
    second.write_text("dbus-machine\n")
    paths = [first, second]
    assert read_machine_id(paths, hostname=lambda: "h") == "dbus-machine"
    first.write_text("uninitialized\n")  # systemd's placeholder on a fresh image
    assert read_machine_id(paths, hostname=lambda: "h") == "dbus-machine"
    first.write_text("systemd-machine\n")
    assert read_machine_id(paths, hostname=lambda: "h") == "systemd-machine"
    assert read_machine_id([tmp_path / "none"], hostname=lambda: "h") == "h"
    fp = machine_fingerprint("systemd-machine")
    assert len(fp) == 64 and "systemd" not in fp and fp != machine_fingerprint("h")
    assert fp != hashlib.sha256(b"systemd-machine").hexdigest()  # salted


# ---- revocation lists --------------------------------------------------------------


HOST_ID = bytes.fromhex("0123456789abcdef")  # make_test_host's


def _rl(
    sequence: int, host_ids: frozenset[bytes] = frozenset(), signer: SigningKey = VENDOR
) -> bytes:
    from volact.documents import RevocationList

    return RevocationList(signer.key_id, sequence, T0, host_ids=host_ids).sign(signer)


def test_a_newer_revocation_list_is_kept_and_never_rolled_back(tmp_path: Path) -> None:
    act, _ = licensed(tmp_path)
    assert act.status().revocation_sequence is None
    first = act.apply_revocations(_rl(3))
    assert first.updated and (first.previous, first.sequence) == (None, 3)
    assert act.status().activated  # the host is not in it
    # An older or equal list (a replay, a stale mirror) changes nothing.
    for seq in (2, 3):
        again = act.apply_revocations(_rl(seq, frozenset({HOST_ID})))
        assert not again.updated and again.sequence == 3 and again.offered == seq
        assert act.status().activated
    # A newer one revoking the host drops its ticket on the next load, with the reason.
    newer = act.apply_revocations(_rl(4, frozenset({HOST_ID})))
    assert newer.updated and newer.sequence == 4
    st = act.status()
    assert not st.activated and "revoked" in (st.last_error or "")
    assert st.revocation_sequence == 4
    # ...and attempts refuse that host.
    st = act.activate()
    assert not st.activated and "revoked" in (st.last_error or "")
    kinds = [e["event"] for e in act.events()]
    assert kinds.count("revocations_updated") == 2 and kinds.count("revocations_unchanged") == 2


def test_a_profile_list_newer_than_the_stored_one_wins_and_forged_lists_are_refused(
    tmp_path: Path,
) -> None:
    act, _ = licensed(tmp_path)
    act.apply_revocations(_rl(2))
    rogue = SigningKey.from_seed(bytes([3]) * 32)
    before = act.store.state_path.read_bytes()
    with pytest.raises(VerificationError):
        act.apply_revocations(_rl(99, frozenset({HOST_ID}), signer=rogue))
    with pytest.raises(VerificationError):
        act.apply_revocations(b"\x14\x01 not a list")
    assert act.store.state_path.read_bytes() == before
    # A product update shipping sequence 5 in its profile: that list is in force.
    newer_profile = make_profile(revocations=_rl(5, frozenset({HOST_ID})))
    assert not act.store.load(newer_profile).ticket
    older_profile = make_profile(revocations=_rl(1, frozenset({HOST_ID})))
    assert act.store.load(older_profile).ticket  # the stored sequence 2 wins over 1


@pytest.mark.filterwarnings("ignore:You should not use the 'timeout' argument")
def test_refresh_revocations_from_a_real_authority_app(tmp_path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from volact.authority.activation import Authority
    from volact.authority.api import ApiConfig, create_app
    from volact.authority.db import Store
    from volact.authority.vault import AuthorityHome
    from volact.client.revocations import fetch_revocations

    home = AuthorityHome.init(tmp_path / "auth", vendor="Test", catalog=CATALOG)
    store = Store(home.database_url)
    store.migrate()
    vendor = home.signing_key()
    auth = Authority(home, store, vendor)
    http = TestClient(create_app(ApiConfig(auth, clock=lambda: T0)))
    clock = Clock()
    net = Network(clock)
    core = make_test_host(vendor, CATALOG)
    fill(core, 4, T0)
    net.add_host("kms.corp.example", core)
    act = net.activation(
        tmp_path / "m", sku=SERVER.name, profile=make_profile(vendor),
        get_revocations=lambda url: fetch_revocations(url, client=http),
    )  # fmt: skip
    act.set_host("kms.corp.example")
    assert act.activate().activated
    with pytest.raises(ConfigurationError, match="--authority"):
        act.refresh_revocations()  # no URL given and none in the profile
    none = act.refresh_revocations("http://testserver")
    assert not none.updated and none.offered is None and none.sequence is None
    auth.revoke(host_id=HOST_ID, now=T0)
    got = act.refresh_revocations("http://testserver")
    assert got.updated and got.sequence == 1
    st = act.status()
    assert not st.activated and st.revocation_sequence == 1 and "revoked" in (st.last_error or "")
