"""Wire messages: golden vectors (byte for byte), round trips, and hostile bytes.

The vectors under ``tests/vectors/wire_*.bin`` are built here from fixed seeds,
UUIDs, nonces and times; ``docs/protocol.md`` shows the same bytes. Regenerate
(only when the protocol changes on purpose) with ``python tests/test_wire.py``.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from volact import wire
from volact.catalog import demo_catalog
from volact.documents import ActivationTicket, HostLicense
from volact.errors import DecodeError
from volact.host import fastwire
from volact.host.policy import make_test_host
from volact.signing import SigningKey
from volact.wire import ActivateReply, ActivateRequest, LicenseState, Result

VECTORS = Path(__file__).parent / "vectors"
CAT = demo_catalog()
VENDOR = SigningKey.from_seed(bytes([0x56]) * 32)
HOST_KEY = SigningKey.from_seed(bytes([0x48]) * 32)
HOST_ID = bytes.fromhex("a1b2c3d4e5f60718")
T = 1_800_000_000
CMID = uuid.UUID("3f2504e0-4f89-41d3-9a0c-0305e82c3301")
NONCE = bytes(range(16))
SKU = CAT.sku("Professional").id


def vectors() -> dict[str, wire.Message]:
    """Every wire message of volact, with fixed inputs."""
    lic = HostLicense(
        VENDOR.key_id, HOST_ID, HOST_KEY.public_key, bytes(range(12)), ("server", "desktop"),
        T - 86_400,
    ).sign(VENDOR)  # fmt: skip
    ticket = ActivationTicket(CMID, SKU, NONCE, HOST_ID, T, T + 180 * 86_400, 120, 10080, 25).sign(
        HOST_KEY
    )
    return {
        "activate_request": ActivateRequest(
            SKU, CMID, NONCE, T, LicenseState.GRACE, 43_200, True, "pc-0042"
        ),
        "activate_request_max": ActivateRequest(
            SKU, CMID, NONCE, T, LicenseState.LICENSED, 2**32 - 1, False, "w" * 63
        ),
        "activate_reply_ok": ActivateReply(Result.OK, 25, 25, 120, 10080, HOST_ID, ticket),
        "activate_reply_count_too_low": ActivateReply(
            Result.COUNT_TOO_LOW, 24, 25, 120, 10080, HOST_ID
        ),
        "get_license": wire.GetLicense(),
        "license_reply": wire.LicenseReply(lic),
    }


def write_vectors() -> None:
    index = {}
    for name, msg in vectors().items():
        frame = wire.encode(msg)
        (VECTORS / f"wire_{name}.bin").write_bytes(frame)
        index[name] = {"type": type(msg).__name__, "bytes": len(frame), "hex": frame.hex()}
    (VECTORS / "wire_vectors.json").write_text(json.dumps(index, indent=2) + "\n")


@pytest.mark.parametrize("name", sorted(vectors()))
def test_golden_vector(name: str) -> None:
    msg = vectors()[name]
    golden = (VECTORS / f"wire_{name}.bin").read_bytes()
    assert wire.encode(msg) == golden
    assert wire.decode(golden) == msg
    index = json.loads((VECTORS / "wire_vectors.json").read_text())
    assert bytes.fromhex(index[name]["hex"]) == golden


def test_size_budget() -> None:
    v = vectors()
    assert len(wire.encode(v["activate_request_max"])) == 130
    assert len(wire.encode(v["activate_reply_ok"])) == 179
    assert len(wire.encode(v["activate_reply_count_too_low"])) == 29
    assert len(wire.encode(v["activate_request"])) == 74


@pytest.mark.parametrize("name", sorted(vectors()))
def test_every_truncation_and_extension_is_refused(name: str) -> None:
    frame = wire.encode(vectors()[name])
    for n in range(len(frame)):
        with pytest.raises(DecodeError):
            wire.decode(frame[:n])
    with pytest.raises(DecodeError):
        wire.decode(frame + b"\x00")


def test_the_host_decides_on_the_golden_request() -> None:
    core = make_test_host(VENDOR, CAT, host_key=HOST_KEY, host_id=HOST_ID)
    golden = (VECTORS / "wire_activate_request.bin").read_bytes()
    reply = wire.decode(core.handle_frame(golden, now=T))
    assert isinstance(reply, ActivateReply)
    assert reply.result is Result.COUNT_TOO_LOW and reply.count == 1 and reply.required == 25


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    """Anything that decodes is canonical: it encodes back to the same bytes."""
    try:
        msg = wire.decode(data, max_frame=wire.MAX_REQUEST_FRAME)
    except DecodeError:
        return
    assert wire.encode(msg) == data


_CORE = make_test_host(VENDOR, CAT, host_key=HOST_KEY, host_id=HOST_ID)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_into_the_host_give_a_reply_or_decode_error(data: bytes) -> None:
    try:
        reply = _CORE.handle_frame(data, now=T)
    except DecodeError:
        return
    assert isinstance(wire.decode(reply), ActivateReply | wire.LicenseReply)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_requests_give_a_reply_or_decode_error(data: st.DataObject) -> None:
    frame = bytearray(wire.encode(vectors()["activate_request"]))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(frame) - 1))
        frame[i] = data.draw(st.integers(0, 255))
    try:
        reply = _CORE.handle_frame(bytes(frame), now=T)
    except DecodeError:
        return
    assert isinstance(wire.decode(reply), ActivateReply | wire.LicenseReply)


if __name__ == "__main__":
    write_vectors()
    sys.stdout.write(f"wrote wire vectors to {VECTORS}\n")


# -- the host's fast codec must agree with the reference codec, both ways ----------

_requests = st.builds(
    ActivateRequest,
    st.uuids(),
    st.uuids(),
    st.binary(min_size=16, max_size=16),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from(list(LicenseState)),
    st.integers(0, 2**32 - 1),
    st.booleans(),
    st.text(max_size=15).filter(lambda s: len(s.encode()) <= 63),
)


@settings(max_examples=300, deadline=None)
@given(_requests)
def test_fast_decode_agrees_on_valid_requests(req: ActivateRequest) -> None:
    raw = fastwire.decode_request(wire.encode(req))
    assert raw == fastwire.RawRequest(
        req.sku.bytes,
        req.cmid.bytes,
        req.nonce,
        req.client_time,
        int(req.state),
        req.minutes_left,
        req.vm,
        req.workstation,
    )


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=140), st.data())
def test_fast_decode_agrees_on_hostile_bytes(data: bytes, more: st.DataObject) -> None:
    if more.draw(st.booleans()):  # make most of them look like activation requests
        frame = bytearray(wire.encode(vectors()["activate_request"]))
        for _ in range(more.draw(st.integers(1, 3))):
            frame[more.draw(st.integers(0, len(frame) - 1))] = more.draw(st.integers(0, 255))
        data = bytes(frame[: more.draw(st.integers(0, len(frame) + 1))])
    try:
        ref = wire.decode(data, max_frame=wire.MAX_REQUEST_FRAME)
    except DecodeError:
        ref = None
    try:
        fast = fastwire.decode_request(data)
    except DecodeError:
        fast = None
    if isinstance(ref, ActivateRequest):
        assert fast is not None and fast.cmid == ref.cmid.bytes and fast.vm == ref.vm
        assert fast.workstation == ref.workstation and fast.state == int(ref.state)
    else:
        assert fast is None


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([r for r in Result if r is not Result.OK]),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(min_size=8, max_size=8),
)
def test_fast_reply_encoding_agrees(result: Result, count: int, required: int, host: bytes) -> None:
    ref = wire.encode(ActivateReply(result, count, required, 120, 10080, host))
    assert fastwire.encode_reply(result, count, required, 120, 10080, host) == ref


def test_fast_ticket_body_agrees() -> None:
    t = ActivationTicket(CMID, SKU, NONCE, HOST_ID, T, T + 5, 120, 10080, 25)
    fast = fastwire.ticket_body(CMID.bytes, SKU.bytes, NONCE, HOST_ID, T, T + 5, 120, 10080, 25)
    assert fast == t.body()


@pytest.mark.parametrize("host_id", [b"", bytes(7), bytes(9)])
def test_fast_encoders_refuse_a_wrong_sized_host_id(host_id: bytes) -> None:
    # As the reference codec does; struct alone would pad or cut it silently.
    with pytest.raises(ValueError, match="host id"):
        ActivateReply(Result.BUSY, 0, 0, 120, 10080, host_id)
    with pytest.raises(ValueError, match="host id"):
        fastwire.encode_reply(Result.BUSY, 0, 0, 120, 10080, host_id)
    with pytest.raises(ValueError, match="host id"):
        fastwire.ticket_body(CMID.bytes, SKU.bytes, NONCE, host_id, T, T + 5, 120, 10080, 25)


def test_fast_encoders_refuse_wrong_sized_fields() -> None:
    with pytest.raises(ValueError, match="ticket"):
        fastwire.encode_reply(Result.OK, 25, 25, 120, 10080, HOST_ID, bytes(149))
    with pytest.raises(ValueError, match="16 bytes"):
        fastwire.ticket_body(CMID.bytes, SKU.bytes, NONCE[:15], HOST_ID, T, T + 5, 120, 10080, 1)
    with pytest.raises(ValueError, match="16 bytes"):
        fastwire.ticket_body(CMID.bytes + b"x", SKU.bytes, NONCE, HOST_ID, T, T, 120, 10080, 1)


def test_protocol_document_shows_the_vectors_exactly() -> None:
    """docs/protocol.md is the contract: its hex must be the vectors' bytes."""
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    vectors = json.loads((VECTORS / "wire_vectors.json").read_text())
    for name, v in vectors.items():
        m = re.search(rf"`{name}`[^\n]*\n(?:```\n(.*?)```|)", doc, re.S)
        assert m is not None, f"docs/protocol.md does not show {name}"
        shown = m.group(1)
        if shown is None:  # a short one, inline: `name`, N bytes: `hex`
            inline = re.search(rf"`{name}`, \d+ bytes: `([0-9a-f ]+)`", doc)
            assert inline is not None, name
            shown = inline.group(1)
        assert re.sub(r"\s", "", shown) == v["hex"], f"docs/protocol.md's {name} is stale"
        assert f"{v['bytes']} bytes" in doc.split(f"`{name}`", 1)[1][:200], name
