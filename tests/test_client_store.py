"""State on disk: every byte checked, validity only from re-verified documents,
atomic writes, the event log."""

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
from volact.client.store import ClientStore, decode_state, encode_state, reverify
from volact.errors import StoreError, VerificationError
from volact.host.policy import make_test_host
from volact.signing import SigningKey

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


def test_every_changed_byte_is_detected(tmp_path: Path) -> None:
    act, _ = licensed(tmp_path)
    path = act.store.state_path
    original = path.read_bytes()
    decode_state(original)  # the untouched file loads
    for i in range(len(original)):
        damaged = bytearray(original)
        damaged[i] ^= 0x01
        with pytest.raises(StoreError):
            decode_state(bytes(damaged))
    with pytest.raises(StoreError):
        decode_state(original[:-1])  # truncated
    with pytest.raises(StoreError):
        decode_state(original + b" ")  # extended


def test_editing_validity_does_not_extend_the_license(tmp_path: Path) -> None:
    act, clock = licensed(tmp_path)

    def extend(o: dict) -> None:  # type: ignore[type-arg]
        o["machine"]["valid_until"] = T0 + 10_000 * DAY
        o["machine"]["permanent"] = True

    rewrite_body(act.store.state_path, extend)
    clock.advance(181 * DAY)
    st = act.status()
    assert st.valid_until == T0 + 180 * DAY and not st.permanent
    assert st.state == "notification"


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


def test_a_ticket_moved_to_another_machine_is_refused(tmp_path: Path) -> None:
    act, _ = licensed(tmp_path)
    rewrite_body(
        act.store.state_path,
        lambda o: o.__setitem__("cmid", "00000000-0000-4000-8000-000000000001"),
    )
    st = act.status()
    assert not st.activated and "is for machine" in (st.last_error or "")


def test_a_home_from_another_vendor_is_refused(tmp_path: Path) -> None:
    act, _ = licensed(tmp_path)
    other = make_profile(SigningKey.from_seed(bytes([3]) * 32))
    with pytest.raises(VerificationError):
        act.store.load(other)


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


def test_round_trip_and_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    act, _ = licensed(tmp_path)
    state = act.load()
    assert reverify(decode_state(encode_state(state)), PROFILE) == state
    assert decode_state(encode_state(state)).machine.valid_until is None  # not from the JSON
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
