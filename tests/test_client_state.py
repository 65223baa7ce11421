"""The client state as a value, in memory: the codec checks every byte, validity comes
only from re-verified documents, and each transition (init, key, rearm, an attempt's
outcome, MAK, revocations) returns the state it should. No files, no clock: a client
and a host are wired together without sockets and ``now`` is passed by hand."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client_support import (
    CATALOG,
    DAY,
    PROFILE,
    SERVER,
    T0,
    VENDOR,
    attempt,
    fill,
    host_exchange,
    make_profile,
)  # fmt: skip
from volact.client.srv import HostAddress
from volact.client.state import (
    MOVED_NOTICE,
    ClientState,
    LastReply,
    decode_state,
    encode_state,
    install_key,
    mak_activated,
    new_state,
    offer_revocations,
    rearm,
    resolve_key,
    reverify,
    same_request,
)
from volact.documents import MakConfirmation, RevocationList, installation_id
from volact.errors import ConfigurationError, StoreError, UsageError, VerificationError
from volact.host.policy import HostCore
from volact.keys import KeyKind, ProductKey
from volact.signing import SigningKey
from volact.testing.hosts import make_test_host
from volact.wire import LicenseState

CMID = uuid.UUID("6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab")
HOST = HostAddress("kms.corp.example")
HOST_ID = bytes.fromhex("0123456789abcdef")  # make_test_host's


def fresh(sku: str | None = SERVER.name, workstation: str = "ws-1") -> ClientState:
    return new_state(PROFILE, cmid=CMID, now=T0, sku=sku, vm=True, workstation=workstation)


def licensed_host() -> HostCore:
    core = make_test_host(VENDOR, CATALOG)
    fill(core, 4, T0)
    return core


def licensed() -> ClientState:
    s = replace(fresh(), manual_host=HOST)
    s = attempt(s, host_exchange(licensed_host(), T0), T0)
    assert s.ticket is not None and s.machine.activated(T0)
    return s


def roundtrip(s: ClientState) -> ClientState:
    return reverify(decode_state(encode_state(s)), PROFILE)


def rewrite_body(data: bytes, edit: Any) -> bytes:
    """Edit the JSON body and recompute the checksum line (a careful attacker)."""
    _, _, body = data.partition(b"\n")
    obj = json.loads(body)
    edit(obj)
    new = json.dumps(obj, indent=2, sort_keys=True).encode() + b"\n"
    return f"volact-client-state 1 {hashlib.sha256(new).hexdigest()}\n".encode() + new


# ---- the codec ---------------------------------------------------------------------


def test_every_changed_byte_is_detected() -> None:
    original = encode_state(licensed())
    decode_state(original)  # the untouched bytes load
    for i in range(len(original)):
        damaged = bytearray(original)
        damaged[i] ^= 0x01
        with pytest.raises(StoreError):
            decode_state(bytes(damaged))
    with pytest.raises(StoreError):
        decode_state(original[:-1])  # truncated
    with pytest.raises(StoreError):
        decode_state(original + b" ")  # extended


def test_round_trip_keeps_everything_but_validity_comes_from_the_documents() -> None:
    s = licensed()
    assert roundtrip(s) == s
    assert decode_state(encode_state(s)).machine.valid_until is None  # not from the JSON


@pytest.mark.parametrize(
    "edit",
    [
        lambda o: o.__setitem__("format", "other"),
        lambda o: o.__setitem__("version", 2),
        lambda o: o.__setitem__("cmid", "not-a-uuid"),
        lambda o: o["machine"].__setitem__("installed_at", "yesterday"),
        lambda o: o.__setitem__("ticket", "%%% not base64"),
        lambda o: o.__setitem__("cached_host", "bad host:99999"),
        lambda o: o.pop("licenses"),
        lambda o: o.__setitem__("last", {"at": 1, "surprise": 2}),
    ],
)
def test_a_malformed_body_is_a_store_error(edit: Any) -> None:
    with pytest.raises(StoreError):
        decode_state(rewrite_body(encode_state(licensed()), edit))


# ---- trust: validity only from documents that verify -------------------------------


def test_editing_validity_does_not_extend_the_license() -> None:
    def extend(o: dict[str, Any]) -> None:
        o["machine"]["valid_until"] = T0 + 10_000 * DAY
        o["machine"]["permanent"] = True

    s = reverify(decode_state(rewrite_body(encode_state(licensed()), extend)), PROFILE)
    assert s.machine.valid_until == T0 + 180 * DAY and not s.machine.permanent
    assert s.machine.state(T0 + 181 * DAY) is LicenseState.NOTIFICATION


def test_a_tampered_ticket_is_dropped_with_a_reason() -> None:
    s = licensed()
    assert s.ticket is not None
    bad = bytearray(s.ticket)
    bad[40] ^= 0xFF  # inside the signed body (the validity date)
    out = reverify(replace(s, ticket=bytes(bad)), PROFILE)
    assert out.ticket is None and out.ticket_license is None
    assert not out.machine.activated(T0) and out.machine.state(T0) is LicenseState.GRACE
    assert "stored activation ticket was refused" in (out.load_problem or "")


def test_a_ticket_moved_to_another_machine_is_refused() -> None:
    out = reverify(replace(licensed(), cmid=uuid.UUID(int=1)), PROFILE)
    assert out.ticket is None and "is for machine" in (out.load_problem or "")


def test_a_state_from_another_vendor_is_refused() -> None:
    other = make_profile(SigningKey.from_seed(bytes([3]) * 32))
    with pytest.raises(VerificationError, match="another vendor key"):
        reverify(licensed(), other)


# ---- transitions -------------------------------------------------------------------


def test_a_new_state_installs_the_skus_setup_key_or_nothing() -> None:
    s = fresh()
    assert s.cmid == CMID and s.created_at == T0 and s.key == PROFILE.gvlk(SERVER).text
    assert s.machine.key_kind is KeyKind.GVLK and s.machine.state(T0) is LicenseState.GRACE
    bare = fresh(sku=None)
    assert bare.key is None and bare.machine.state(T0) is LicenseState.UNLICENSED
    long_name = fresh(workstation="é" * 40)
    assert len(long_name.workstation.encode()) <= 63  # cut on a character boundary
    with pytest.raises(ConfigurationError):
        fresh(sku="No Such Product")


def test_installing_a_key_drops_the_activation_of_another() -> None:
    s = licensed()
    gvlk, sku = resolve_key(PROFILE, PROFILE.gvlk(SERVER).text, None)
    assert install_key(s, T0 + 1, gvlk, sku) is s  # the same key again: nothing changes
    mak = ProductKey.generate(KeyKind.MAK, bytes(range(12)))
    with pytest.raises(UsageError, match="give the SKU"):
        resolve_key(PROFILE, mak.text, None)
    key, sku = resolve_key(PROFILE, mak.text, SERVER.name)
    out = install_key(s, T0 + 1, key, sku)
    assert out.ticket is None and out.key == mak.text and out.machine.key_kind is KeyKind.MAK
    assert not out.machine.activated(T0 + 1)
    host_key = ProductKey.generate(KeyKind.HOST, bytes(12))
    with pytest.raises(UsageError, match="host key"):
        resolve_key(PROFILE, host_key.text, None)


def test_rearm_is_one_transition_for_both_causes() -> None:
    s = replace(licensed(), machine_fingerprint="a" * 64, cached_host=HOST)
    new_cmid = uuid.UUID(int=2)
    manual = rearm(s, now=T0 + DAY, cmid=new_cmid)
    moved = rearm(
        s, now=T0 + DAY, cmid=new_cmid, reason=MOVED_NOTICE, machine_fingerprint="b" * 64
    )
    for out in (manual, moved):
        assert out.cmid == new_cmid and out.key == s.key
        assert out.ticket is None and out.ticket_license is None and out.cached_host is None
        assert out.machine.state(T0 + DAY) is LicenseState.GRACE
        assert out.machine.grace_end(T0 + DAY) == T0 + DAY + 30 * DAY
        assert not same_request(s, out)  # an attempt in flight is discarded
    assert manual.last is None and manual.machine_fingerprint == "a" * 64
    assert moved.last == LastReply(at=T0 + DAY, error=MOVED_NOTICE)
    assert moved.machine_fingerprint == "b" * 64
    assert roundtrip(moved) == moved


def test_outcomes_count_too_low_then_ok_then_a_failure() -> None:
    core = make_test_host(VENDOR, CATALOG)
    s = replace(fresh(), manual_host=HOST)
    s = attempt(s, host_exchange(core, T0), T0)
    assert s.last is not None and (s.last.result, s.last.count, s.last.required) == (
        "count_too_low", 1, 5,
    )  # fmt: skip
    assert s.machine.state(T0) is LicenseState.GRACE and s.ticket is None
    assert s.licenses == {}  # a refusal carries no license to cache
    fill(core, 4, T0)
    s = attempt(s, host_exchange(core, T0 + 60), T0 + 60)
    assert s.machine.activated(T0 + 60) and s.licenses == {HOST_ID.hex(): core.license_bytes}
    assert s.cached_host == HOST and s.last is not None and s.last.error is None

    def down(address: HostAddress, frame: bytes, timeout: float) -> bytes:
        from volact.errors import TransportError

        raise TransportError("connection refused")

    later = attempt(s, down, T0 + 7 * DAY)
    assert later.ticket == s.ticket and later.machine.valid_until == s.machine.valid_until
    assert later.last is not None and "connection refused" in (later.last.error or "")
    assert roundtrip(later) == later


def test_a_mak_confirmation_makes_the_state_permanent_and_survives_the_codec() -> None:
    mak = ProductKey.generate(KeyKind.MAK, bytes(range(12)))
    key, sku = resolve_key(PROFILE, mak.text, SERVER.name)
    s = install_key(fresh(), T0, key, sku)
    conf = MakConfirmation(VENDOR.key_id, mak.serial, s.cmid, SERVER.id,
                           installation_id(s.cmid, SERVER.id), T0).sign(VENDOR)  # fmt: skip
    out = mak_activated(s, conf, T0)
    assert out.machine.permanent and out.machine.activated(T0 + 3650 * DAY)
    assert roundtrip(out) == out
    # A confirmation for another machine is dropped on load.
    moved = reverify(replace(out, cmid=uuid.UUID(int=9)), PROFILE)
    assert not moved.machine.permanent and "MAK confirmation was refused" in (
        moved.load_problem or ""
    )


def _rl(sequence: int, host_ids: frozenset[bytes] = frozenset()) -> tuple[RevocationList, bytes]:
    rl = RevocationList(VENDOR.key_id, sequence, T0, host_ids=host_ids)
    return rl, rl.sign(VENDOR)


def test_revocation_lists_only_move_forward() -> None:
    s = licensed()
    s, first = offer_revocations(s, PROFILE, *_rl(3))
    assert first.updated and (first.previous, first.sequence) == (None, 3)
    for seq in (2, 3):  # a replay or a stale mirror
        again, update = offer_revocations(s, PROFILE, *_rl(seq, frozenset({HOST_ID})))
        assert again is s and not update.updated and update.sequence == 3
    s, newer = offer_revocations(s, PROFILE, *_rl(4, frozenset({HOST_ID})))
    assert newer.updated and newer.sequence == 4
    out = reverify(s, PROFILE)
    assert out.ticket is None and "revoked" in (out.load_problem or "")
    # A profile shipping a newer list wins over the stored one; an older one does not.
    newer_profile = make_profile(revocations=_rl(5, frozenset({HOST_ID}))[1])
    assert reverify(licensed(), newer_profile).ticket is None
    kept, _ = offer_revocations(licensed(), PROFILE, *_rl(2))
    older_profile = make_profile(revocations=_rl(1, frozenset({HOST_ID}))[1])
    assert reverify(kept, older_profile).ticket  # the stored sequence 2 wins over 1


# ---- any sequence of transitions ends in a state the codec and reverify keep -------


EVENTS = st.lists(
    st.sampled_from(["wait_day", "attempt_ok", "attempt_low", "attempt_down", "rearm",
                     "mak", "gvlk", "caching_off"]),
    max_size=12,
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(EVENTS)
def test_every_sequence_of_transitions_round_trips(events: list[str]) -> None:
    from volact.errors import TransportError

    good, low = licensed_host(), make_test_host(VENDOR, CATALOG)
    now = T0
    s = replace(fresh(), manual_host=HOST)
    mak = ProductKey.generate(KeyKind.MAK, bytes(range(12)))

    def down(address: HostAddress, frame: bytes, timeout: float) -> bytes:
        raise TransportError("down")

    for i, event in enumerate(events):
        if event == "wait_day":
            now += DAY
        elif event.startswith("attempt") and s.machine.key_kind is KeyKind.GVLK:
            core = {"attempt_ok": good, "attempt_low": low}.get(event)
            s = attempt(s, down if core is None else host_exchange(core, now), now)
        elif event == "rearm":
            s = rearm(s, now=now, cmid=uuid.UUID(int=i + 1))
        elif event in ("mak", "gvlk"):
            text = mak.text if event == "mak" else PROFILE.gvlk(SERVER).text
            key, sku = resolve_key(PROFILE, text, SERVER.name)
            s = install_key(s, now, key, sku)
        elif event == "caching_off":
            s = replace(s, host_caching=False, cached_host=None)
        assert roundtrip(s) == s
        m = s.machine
        assert m.state(now) in set(LicenseState)
        assert (s.ticket is not None) == (m.valid_until is not None)
        assert m.activated(now) == (m.state(now) is LicenseState.LICENSED)
        assert base64.b64encode(encode_state(s))  # always encodable
