"""The volact activation protocol on the wire: framing, messages, result codes.

One TCP connection carries one exchange: the client sends one frame, the host
answers with one frame and closes. Two exchanges exist: activation (or renewal)
and fetching the host's license, which a client does once per host.

Frame: ``length u16 | version u8 | type u8 | payload``, big-endian, where
``length`` counts the bytes after itself. Every structure has a paired
``encode``/``decode``; decoding raises :class:`~volact.errors.DecodeError` and
nothing else. Layouts and vectors: ``docs/protocol.md``, ``tests/vectors/``.
No I/O, no clock.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from volact.buffer import Reader, Writer
from volact.documents import HOST_ID_BYTES, NONCE_BYTES, ActivationTicket
from volact.errors import DecodeError

PROTOCOL_VERSION = 1
DEFAULT_PORT = 1688
LENGTH_BYTES = 2
HEADER_BYTES = LENGTH_BYTES + 2
MAX_WORKSTATION_BYTES = 63
#: Largest frame a host accepts from a client (the biggest request is 130 bytes).
MAX_REQUEST_FRAME = 256
#: Largest frame a client accepts (license replies carry a host license).
MAX_REPLY_FRAME = 2048
#: A ticket in a reply has this exact size; anything else is malformed.
TICKET_BYTES = ActivationTicket.SIZE

# Timing that host and client must agree on; both import it from here.
MINUTE = 60
DAY = 86_400
#: A granted activation lasts this long from the last success (ms).
VALIDITY_SECONDS = 180 * DAY
#: A request whose client time is further than this from the host's is refused.
MAX_CLOCK_SKEW = 4 * 3600
#: Bounds on the intervals a host sends, in minutes: 15 minutes to 30 days (ms).
MIN_INTERVAL = 15
MAX_INTERVAL = 30 * 24 * 60
#: Default intervals in minutes: retry every 2 hours, renew every 7 days.
DEFAULT_ACTIVATION_INTERVAL = 120
DEFAULT_RENEWAL_INTERVAL = 7 * 24 * 60


class MsgType(enum.IntEnum):
    ACTIVATE = 1  #: client → host: activate or renew
    ACTIVATE_REPLY = 2  #: host → client
    GET_LICENSE = 3  #: client → host: send me your host license
    LICENSE_REPLY = 4  #: host → client


class LicenseState(enum.IntEnum):
    """The client's license state, as it reports it to the host."""

    UNLICENSED = 0
    GRACE = 1
    LICENSED = 2
    NOTIFICATION = 3


class Result(enum.IntEnum):
    """What the host decided. Codes are stable; names are shown to people."""

    OK = 0  #: activated (or renewed); a ticket follows
    COUNT_TOO_LOW = 1  #: count below the SKU group's threshold; stay in grace, retry
    HOST_NOT_ACTIVATED = 2  #: the host has no host license yet
    SKU_NOT_COVERED = 3  #: the host license does not cover this SKU's group
    UNKNOWN_SKU = 4  #: the SKU is not in the host's catalog
    CLOCK_SKEW = 5  #: client time more than the allowed skew from the host's
    HOST_LICENSE_EXPIRED = 6  #: the host's license has expired
    HOST_REVOKED = 7  #: the vendor revoked this host or its host key
    UNSUPPORTED_VERSION = 8  #: protocol version not spoken by this host
    BUSY = 9  #: the host could not record the request; retry later

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Result.OK: "activated",
    Result.COUNT_TOO_LOW: "count too low: the host has not yet seen enough machines",
    Result.HOST_NOT_ACTIVATED: "the host itself is not activated",
    Result.SKU_NOT_COVERED: "the host's license does not cover this product",
    Result.UNKNOWN_SKU: "the host does not know this product",
    Result.CLOCK_SKEW: "the machine's clock is too far from the host's",
    Result.HOST_LICENSE_EXPIRED: "the host's license has expired",
    Result.HOST_REVOKED: "the vendor has revoked this host",
    Result.UNSUPPORTED_VERSION: "the host does not speak this protocol version",
    Result.BUSY: "the host could not record the request; try again later",
}


@dataclass(frozen=True)
class ActivateRequest:
    """An activation or renewal request (renewal is an activation by a licensed client)."""

    sku: uuid.UUID  #: the SKU to activate
    cmid: uuid.UUID  #: the client machine id
    nonce: bytes  #: 16 fresh random bytes; the ticket must echo them
    client_time: int  #: the client's clock, Unix seconds
    state: LicenseState  #: the client's license state now
    minutes_left: int  #: minutes left in grace or validity (0 if none)
    vm: bool  #: the client is a virtual machine
    workstation: str  #: short machine name, at most 63 UTF-8 bytes

    def __post_init__(self) -> None:
        if len(self.nonce) != NONCE_BYTES:
            raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
        if len(self.workstation.encode("utf-8")) > MAX_WORKSTATION_BYTES:
            raise ValueError(f"workstation name exceeds {MAX_WORKSTATION_BYTES} bytes")
        if not 0 <= self.minutes_left <= 0xFFFFFFFF:
            raise ValueError("minutes_left out of range")


@dataclass(frozen=True)
class ActivateReply:
    """The host's answer: a result, its counters and intervals, and a ticket on OK."""

    result: Result  #: the decision
    count: int  #: the host's current count for the SKU's group (this client included)
    required: int  #: the threshold of the SKU's group (0 if not applicable)
    activation_interval: int  #: minutes between retries, which replaces the client's
    renewal_interval: int  #: minutes between renewals, which replaces the client's
    host_id: bytes  #: 8 bytes naming the host (zeros if it has no identity yet)
    ticket: bytes | None = None  #: the signed ticket, present exactly when result is OK

    def __post_init__(self) -> None:
        if len(self.host_id) != HOST_ID_BYTES:
            raise ValueError(f"host id must be {HOST_ID_BYTES} bytes")
        if (self.ticket is not None) != (self.result is Result.OK):
            raise ValueError("a ticket comes with OK and only with OK")
        if self.ticket is not None and len(self.ticket) != TICKET_BYTES:
            raise ValueError(f"a ticket is {TICKET_BYTES} bytes")


@dataclass(frozen=True)
class GetLicense:
    """Ask the host for its license (the vendor-signed host license)."""


@dataclass(frozen=True)
class LicenseReply:
    """The host's license, or empty bytes if it has none."""

    host_license: bytes  #: a signed host license document


Message = ActivateRequest | ActivateReply | GetLicense | LicenseReply


def _frame(kind: MsgType, payload: bytes) -> bytes:
    return Writer().u16(len(payload) + 2).u8(PROTOCOL_VERSION).u8(kind).raw(payload).getvalue()


def encode(msg: Message) -> bytes:
    """One complete frame for ``msg``."""
    if isinstance(msg, ActivateRequest):
        w = Writer().uuid(msg.sku).uuid(msg.cmid).raw(msg.nonce).i64(msg.client_time)
        w.u8(msg.state).u32(msg.minutes_left).u8(1 if msg.vm else 0)
        w.short_text(msg.workstation, MAX_WORKSTATION_BYTES)
        return _frame(MsgType.ACTIVATE, w.getvalue())
    if isinstance(msg, ActivateReply):
        w = Writer().u8(msg.result).u32(msg.count).u32(msg.required)
        w.u32(msg.activation_interval).u32(msg.renewal_interval).raw(msg.host_id)
        if msg.ticket is not None:
            w.raw(msg.ticket)
        return _frame(MsgType.ACTIVATE_REPLY, w.getvalue())
    if isinstance(msg, GetLicense):
        return _frame(MsgType.GET_LICENSE, b"")
    return _frame(MsgType.LICENSE_REPLY, msg.host_license)


def frame_length(header: bytes) -> int:
    """From the first two bytes of a frame, how many bytes follow them."""
    if len(header) != LENGTH_BYTES:
        raise DecodeError("a frame length is two bytes")
    n = int.from_bytes(header, "big")
    if n < 2:
        raise DecodeError(f"frame length {n} is too short")
    return n


def decode(frame: bytes, *, max_frame: int = MAX_REPLY_FRAME) -> Message:
    """Decode exactly one complete frame (no more, no less)."""
    if len(frame) > max_frame:
        raise DecodeError(f"frame of {len(frame)} bytes exceeds the limit of {max_frame}")
    r = Reader(frame, "frame")
    n = r.u16()
    if n != r.remaining:
        raise DecodeError(f"frame says {n} bytes follow, {r.remaining} do")
    return decode_body(r.rest())


def decode_body(body: bytes) -> Message:
    """Decode a frame's contents after the length (``version | type | payload``)."""
    r = Reader(body, "frame")
    version, kind = r.u8(), r.u8()
    if version != PROTOCOL_VERSION:
        raise DecodeError(f"protocol version {version} is not supported")
    msg: Message
    if kind == MsgType.ACTIVATE:
        r = Reader(r.rest(), "activation request")
        sku, cmid, nonce, t = r.uuid(), r.uuid(), r.raw(NONCE_BYTES), r.i64()
        raw_state, minutes, flags = r.u8(), r.u32(), r.u8()
        name = r.short_text(MAX_WORKSTATION_BYTES)
        if raw_state not in LicenseState._value2member_map_:
            raise DecodeError(f"unknown license state {raw_state}")
        if flags & ~1:
            raise DecodeError(f"unknown request flags 0x{flags:02x}")
        msg = ActivateRequest(
            sku, cmid, nonce, t, LicenseState(raw_state), minutes, bool(flags), name
        )
    elif kind == MsgType.ACTIVATE_REPLY:
        r = Reader(r.rest(), "activation reply")
        raw_result = r.u8()
        if raw_result not in Result._value2member_map_:
            raise DecodeError(f"unknown result code {raw_result}")
        result = Result(raw_result)
        count, req, act, ren, host = r.u32(), r.u32(), r.u32(), r.u32(), r.raw(HOST_ID_BYTES)
        ticket = r.raw(TICKET_BYTES) if result is Result.OK else None
        msg = ActivateReply(result, count, req, act, ren, host, ticket)
    elif kind == MsgType.GET_LICENSE:
        msg = GetLicense()
    elif kind == MsgType.LICENSE_REPLY:
        return LicenseReply(r.rest())
    else:
        raise DecodeError(f"unknown message type {kind}")
    r.end()
    return msg
