"""Wire messages: golden vectors (byte for byte), round trips, and hostile bytes.

The vectors under ``tests/vectors/wire_*.bin`` are built here from fixed seeds,
UUIDs, nonces and times; ``docs/protocol.md`` shows the same bytes. Regenerate
(only when the protocol changes on purpose) with ``python tests/test_wire.py``.
"""

from __future__ import annotations

import itertools
import json
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from volact import wire
from volact.catalog import demo_catalog
from volact.documents import ActivationTicket, HostLicense, ticket_body
from volact.errors import DecodeError, NotVolactError, UsageError
from volact.signing import SigningKey
from volact.testing.hosts import make_test_host
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
    move = ActivationTicket(
        CMID, SKU, NONCE, HOST_ID, T, T + 180 * 86_400, 120, 10080, 25, move=True, version=2
    ).sign(HOST_KEY)
    return {
        "activate_request": ActivateRequest(
            SKU, CMID, NONCE, T, LicenseState.GRACE, 43_200, True, "pc-0042"
        ),
        "activate_request_max": ActivateRequest(
            SKU, CMID, NONCE, T, LicenseState.LICENSED, 2**32 - 1, False, "w" * 63
        ),
        "activate_reply_ok": ActivateReply(Result.OK, 25, 25, 120, 10080, HOST_ID, ticket),
        "activate_request_v2": ActivateRequest(
            SKU, CMID, NONCE, T, LicenseState.LICENSED, 259_200, False, "pc-0042", version=2
        ),
        "activate_reply_ok_move": ActivateReply(
            Result.OK, 25, 25, 120, 10080, HOST_ID, move, version=2
        ),
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
    assert len(wire.encode(v["activate_request_v2"])) == 74
    assert len(wire.encode(v["activate_reply_ok_move"])) == 180


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


# -- the host's hot path is the codec: raw values in and out ---------------------

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
def test_requests_round_trip_through_values_and_raw(req: ActivateRequest) -> None:
    frame = wire.encode(req)
    assert wire.decode(frame) == req
    assert wire.decode_request(frame) == wire.RawRequest(
        req.sku.bytes, req.cmid.bytes, req.nonce, req.client_time, int(req.state),
        req.minutes_left, req.vm, req.workstation,
    )  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([r for r in Result if r is not Result.OK]),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(min_size=8, max_size=8),
)
def test_replies_round_trip(result: Result, count: int, required: int, host: bytes) -> None:
    frame = wire.encode_reply(result, count, required, 120, 10080, host)
    assert wire.decode(frame) == ActivateReply(result, count, required, 120, 10080, host)


def test_ticket_body_is_the_documents_layout() -> None:
    t = ActivationTicket(CMID, SKU, NONCE, HOST_ID, T, T + 5, 120, 10080, 25)
    body = ticket_body(CMID.bytes, SKU.bytes, NONCE, HOST_ID, T, T + 5, 120, 10080, 25)
    assert t.body() == body
    assert ActivationTicket.decode(t.sign(HOST_KEY))[0] == t


@pytest.mark.parametrize("host_id", [b"", bytes(7), bytes(9)])
def test_encoders_refuse_a_wrong_sized_host_id(host_id: bytes) -> None:
    # struct alone would pad or cut it silently.
    with pytest.raises(UsageError, match="host id"):
        ActivateReply(Result.BUSY, 0, 0, 120, 10080, host_id)
    with pytest.raises(UsageError, match="host id"):
        wire.encode_reply(Result.BUSY, 0, 0, 120, 10080, host_id)
    with pytest.raises(UsageError, match="host id"):
        ticket_body(CMID.bytes, SKU.bytes, NONCE, host_id, T, T + 5, 120, 10080, 25)


def test_encoders_refuse_wrong_sized_or_out_of_range_fields() -> None:
    with pytest.raises(UsageError, match="ticket"):
        wire.encode_reply(Result.OK, 25, 25, 120, 10080, HOST_ID, bytes(149))
    with pytest.raises(UsageError, match="16 bytes"):
        ticket_body(CMID.bytes, SKU.bytes, NONCE[:15], HOST_ID, T, T + 5, 120, 10080, 1)
    with pytest.raises(UsageError, match="16 bytes"):
        ticket_body(CMID.bytes + b"x", SKU.bytes, NONCE, HOST_ID, T, T, 120, 10080, 1)
    with pytest.raises(UsageError, match="out of range"):
        wire.encode_reply(Result.BUSY, 2**32, 0, 120, 10080, HOST_ID)
    with pytest.raises(UsageError, match="out of range"):
        ticket_body(CMID.bytes, SKU.bytes, NONCE, HOST_ID, 2**63, T, 120, 10080, 1)
    with pytest.raises(UsageError, match="nonce"):
        ActivateRequest(SKU, CMID, NONCE[:3], T, LicenseState.GRACE, 0, False, "pc")
    with pytest.raises(UsageError, match="workstation"):
        ActivateRequest(SKU, CMID, NONCE, T, LicenseState.GRACE, 0, False, "w" * 64)


# -- the frame reader: fed whole, byte by byte, and in random splits -----------------

_STREAM = b"".join(wire.encode(m) for m in vectors().values())
_FRAMES = [wire.encode(m) for m in vectors().values()]


def _feed_all(chunks: list[bytes]) -> list[bytes]:
    reader = wire.FrameReader(wire.MAX_REPLY_FRAME)
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(reader.feed(chunk))
    reader.eof()
    assert reader.buffered == 0
    return out


def test_frame_reader_whole_stream() -> None:
    assert _feed_all([_STREAM]) == _FRAMES


def test_frame_reader_byte_by_byte() -> None:
    assert _feed_all([_STREAM[i : i + 1] for i in range(len(_STREAM))]) == _FRAMES


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, len(_STREAM)), max_size=40))
def test_frame_reader_random_splits(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(_STREAM)]
    chunks = [_STREAM[a:b] for a, b in itertools.pairwise(points)]
    assert _feed_all(chunks) == _FRAMES


@pytest.mark.parametrize("name", sorted(vectors()))
def test_frame_reader_with_a_cut_frame_refuses_the_end_of_stream(name: str) -> None:
    frame = wire.encode(vectors()[name])
    for n in range(1, len(frame)):
        reader = wire.FrameReader(wire.MAX_REPLY_FRAME)
        assert reader.feed(frame[:n]) == []
        assert reader.buffered == n
        with pytest.raises(DecodeError):
            reader.eof()


def test_frame_reader_refuses_oversize_from_the_first_two_bytes() -> None:
    reader = wire.FrameReader(wire.MAX_REQUEST_FRAME, peer="client")
    with pytest.raises(DecodeError, match="exceeds 256") as info:
        reader.feed(b"\x01\x00")  # 258 bytes announced: no need to wait for them
    assert not isinstance(info.value, NotVolactError)
    with pytest.raises(DecodeError, match="exceeds"):  # it stays broken
        reader.feed(bytes(10))
    with pytest.raises(DecodeError, match="too short"):
        wire.FrameReader(wire.MAX_REQUEST_FRAME).feed(b"\x00\x01\x01")


@pytest.mark.parametrize(
    "answer",
    [b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\n", b"SSH-2.0-OpenSSH_9.2\r\n",
     b"GET / HTTP/1.1\r\n", b"\x1b[31mhi"[1:]],
)  # fmt: skip
def test_frame_reader_says_not_volact_for_other_protocols(answer: bytes) -> None:
    reader = wire.FrameReader(wire.MAX_REPLY_FRAME, peer="host")
    for i in range(1, 2):  # one byte is not enough to know
        assert reader.feed(answer[:i]) == []
    with pytest.raises(NotVolactError, match="that is not a volact host") as info:
        reader.feed(answer[1:])
    assert "\r" not in str(info.value) and "\x1b" not in str(info.value)


def test_frame_reader_escapes_what_it_quotes() -> None:
    with pytest.raises(NotVolactError) as info:
        wire.FrameReader(wire.MAX_REPLY_FRAME, peer="host").feed(b"AB\x1b]52;c;evil\x07\\")
    text = str(info.value)
    assert "\x1b" not in text and "\x07" not in text and "\\x1b" in text


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=10))
def test_frame_reader_any_bytes_give_frames_or_decode_error(data: bytes, cuts: list[int]) -> None:
    points = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    reader = wire.FrameReader(wire.MAX_REQUEST_FRAME)
    got: list[bytes] = []
    try:
        for a, b in itertools.pairwise(points):
            got.extend(reader.feed(data[a:b]))
    except DecodeError:
        return
    assert b"".join(got) + data[len(data) - reader.buffered :] == data
    assert all(4 <= len(f) <= wire.MAX_REQUEST_FRAME for f in got)


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
