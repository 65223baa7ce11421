"""The host's hot path through the wire format: one ``struct`` call each way.

:mod:`volact.wire` is the reference codec (and the only one clients use); this
module reads an activation request and writes a reply and a ticket body with
precompiled ``struct`` layouts and no intermediate objects, because at thousands
of exchanges a second the reference codec's per-field cursor is a quarter of the
host's CPU. It must accept exactly what :func:`volact.wire.decode` accepts and
produce exactly the bytes :func:`volact.wire.encode` produces; the tests check
both directions with Hypothesis. No I/O, no clock.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from volact.documents import DOC_VERSION, HOST_ID_BYTES, NONCE_BYTES, DocType
from volact.errors import DecodeError
from volact.wire import (
    MAX_WORKSTATION_BYTES,
    PROTOCOL_VERSION,
    TICKET_BYTES,
    LicenseState,
    MsgType,
)

#: length, version, type, sku, cmid, nonce, client time, state, minutes left, flags, name length
_REQUEST = struct.Struct(">HBB16s16s16sqBIBB")
#: length, version, type, result, count, required, activation, renewal, host id
_REPLY = struct.Struct(">HBBBIIII8s")
#: type, version, cmid, sku, nonce, host id, issued, valid until, activation, renewal, count
_TICKET_BODY = struct.Struct(">BB16s16s16s8sqqIII")
_STATES = frozenset(int(s) for s in LicenseState)


class RawRequest(NamedTuple):
    """An activation request as bytes and ints (UUIDs stay 16 raw bytes)."""

    sku: bytes  #: SKU id, 16 bytes
    cmid: bytes  #: client machine id, 16 bytes
    nonce: bytes  #: 16 bytes
    client_time: int  #: Unix seconds, client clock
    state: int  #: :class:`LicenseState` value
    minutes_left: int  #: minutes of grace or validity left
    vm: bool  #: virtual machine flag
    workstation: str  #: machine name


def decode_request(frame: bytes) -> RawRequest:
    """An ACTIVATE frame → :class:`RawRequest`; :class:`DecodeError` otherwise."""
    n = len(frame)
    if n < _REQUEST.size:
        raise DecodeError(f"activation request is truncated ({n} bytes)")
    length, version, kind, sku, cmid, nonce, t, state, minutes, flags, name_len = (
        _REQUEST.unpack_from(frame)
    )
    if length != n - 2:
        raise DecodeError(f"frame says {length} bytes follow, {n - 2} do")
    if version != PROTOCOL_VERSION:
        raise DecodeError(f"protocol version {version} is not supported")
    if kind != MsgType.ACTIVATE:
        raise DecodeError(f"message type {kind} is not an activation request")
    if name_len > MAX_WORKSTATION_BYTES:
        raise DecodeError(f"workstation name of {name_len} bytes exceeds {MAX_WORKSTATION_BYTES}")
    if n != _REQUEST.size + name_len:
        raise DecodeError("activation request length does not match its contents")
    if state not in _STATES:
        raise DecodeError(f"unknown license state {state}")
    if flags & ~1:
        raise DecodeError(f"unknown request flags 0x{flags:02x}")
    try:
        name = frame[_REQUEST.size :].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("activation request: text is not UTF-8") from exc
    return RawRequest(sku, cmid, nonce, t, state, minutes, flags == 1, name)


def encode_reply(
    result: int,
    count: int,
    required: int,
    activation_interval: int,
    renewal_interval: int,
    host_id: bytes,
    ticket: bytes = b"",
) -> bytes:
    """The same bytes as ``wire.encode(ActivateReply(...))``.

    A wrong-sized host id or ticket is a ValueError, as in :mod:`volact.wire`
    (``struct`` would pad or cut it silently).
    """
    if len(host_id) != HOST_ID_BYTES:
        raise ValueError(f"host id must be {HOST_ID_BYTES} bytes")
    if ticket and len(ticket) != TICKET_BYTES:
        raise ValueError(f"a ticket is {TICKET_BYTES} bytes")
    return (
        _REPLY.pack(
            _REPLY.size - 2 + len(ticket), PROTOCOL_VERSION, MsgType.ACTIVATE_REPLY, result,
            count, required, activation_interval, renewal_interval, host_id,
        )
        + ticket
    )  # fmt: skip


def ticket_body(
    cmid: bytes,
    sku: bytes,
    nonce: bytes,
    host_id: bytes,
    issued_at: int,
    valid_until: int,
    activation_interval: int,
    renewal_interval: int,
    count: int,
) -> bytes:
    """The same bytes as ``ActivationTicket(...).body()``; ValueError on a wrong-sized field."""
    if len(host_id) != HOST_ID_BYTES:
        raise ValueError(f"host id must be {HOST_ID_BYTES} bytes")
    if len(cmid) != 16 or len(sku) != 16 or len(nonce) != NONCE_BYTES:
        raise ValueError("cmid, sku and nonce must be 16 bytes each")
    return _TICKET_BODY.pack(
        DocType.TICKET, DOC_VERSION, cmid, sku, nonce, host_id, issued_at, valid_until,
        activation_interval, renewal_interval, count,
    )  # fmt: skip
