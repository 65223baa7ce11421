"""The volact activation protocol on the wire: framing, messages, result codes.

One TCP connection carries one exchange: the client sends one frame, the host
answers with one frame and closes. Two exchanges exist: activation (or renewal)
and fetching the host's license, which a client does once per host.

Frame: ``length u16 | version u8 | type u8 | payload``, big-endian, where
``length`` counts the bytes after itself. Every structure has a paired
``encode``/``decode``; decoding raises :class:`~volact.errors.DecodeError` and
nothing else. Layouts and vectors: ``docs/protocol.md``, ``tests/vectors/``.

This module is the one codec. The request and reply layouts are precompiled
``struct`` formats: the host's hot path (:func:`decode_request`,
:func:`encode_reply`) is one ``struct`` call each way with no intermediate
objects, and :func:`encode`/:func:`decode` go through the same layouts. The
ticket inside a reply is :mod:`volact.documents`' business. :class:`FrameReader`
cuts a byte stream into frames, sans-I/O: the host server and the client
transport both feed it what their sockets receive. No I/O, no clock.
"""

from __future__ import annotations

import enum
import struct
import uuid
from dataclasses import dataclass
from typing import NamedTuple

from volact.documents import HOST_ID_BYTES, NONCE_BYTES, ActivationTicket
from volact.errors import DecodeError, NotVolactError, UsageError

PROTOCOL_VERSION = 1
#: Version 2 adds one thing: an ``ACTIVATE_REPLY`` in version 2 carries a version-2
#: ticket, which may ask the client to move to another host (rebalance, drain).
#: Layouts are otherwise those of version 1. A host answers each activation in the
#: version it was asked in; license fetches stay version 1 (``docs/protocol.md``).
PROTOCOL_VERSION_MOVE = 2
#: The versions an activation exchange may use, oldest first.
ACTIVATE_VERSIONS = (PROTOCOL_VERSION, PROTOCOL_VERSION_MOVE)
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
#: The size of a ticket in a version-2 reply.
TICKET_BYTES_V2 = ActivationTicket.SIZE_V2


def ticket_bytes(version: int) -> int:
    """The exact size of the ticket in an ``ACTIVATE_REPLY`` of protocol ``version``."""
    return TICKET_BYTES if version == PROTOCOL_VERSION else TICKET_BYTES_V2


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
    #: the host will not count another new machine now (its count is full, or too
    #: many new machines came from the client's network lately); retry later
    COUNT_REFUSED = 10

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
    Result.COUNT_REFUSED: "the host will not count another new machine now; try again later",
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
    #: protocol version of the frame: 2 says "I understand move hints"
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        if self.version not in ACTIVATE_VERSIONS:
            raise UsageError(f"protocol version {self.version} does not exist")
        if len(self.nonce) != NONCE_BYTES:
            raise UsageError(f"nonce must be {NONCE_BYTES} bytes")
        if len(self.workstation.encode("utf-8")) > MAX_WORKSTATION_BYTES:
            raise UsageError(f"workstation name exceeds {MAX_WORKSTATION_BYTES} bytes")
        if not 0 <= self.minutes_left <= 0xFFFFFFFF:
            raise UsageError("minutes_left out of range")


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
    #: protocol version of the frame (the request's; 1 for UNSUPPORTED_VERSION)
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        if self.version not in ACTIVATE_VERSIONS:
            raise UsageError(f"protocol version {self.version} does not exist")
        if len(self.host_id) != HOST_ID_BYTES:
            raise UsageError(f"host id must be {HOST_ID_BYTES} bytes")
        if (self.ticket is not None) != (self.result is Result.OK):
            raise UsageError("a ticket comes with OK and only with OK")
        size = ticket_bytes(self.version)
        if self.ticket is not None and len(self.ticket) != size:
            raise UsageError(f"a ticket in a version-{self.version} reply is {size} bytes")


@dataclass(frozen=True)
class GetLicense:
    """Ask the host for its license (the vendor-signed host license)."""


@dataclass(frozen=True)
class LicenseReply:
    """The host's license, or empty bytes if it has none."""

    host_license: bytes  #: a signed host license document


Message = ActivateRequest | ActivateReply | GetLicense | LicenseReply


# -- layouts -------------------------------------------------------------------

#: length, version, type, sku, cmid, nonce, client time, state, minutes left, flags,
#: name length; the name's UTF-8 bytes follow.
_REQUEST = struct.Struct(">HBB16s16s16sqBIBB")
#: length, version, type, result, count, required, activation, renewal, host id;
#: the ticket follows when the result is OK.
_REPLY = struct.Struct(">HBBBIIII8s")
#: length, version, type: every frame starts with these.
_HEADER = struct.Struct(">HBB")
_STATES = frozenset(int(s) for s in LicenseState)
_RESULTS = {int(r): r for r in Result}
# Plain ints and sizes for the hot path (an enum member is a slower lookup).
_ACTIVATE = int(MsgType.ACTIVATE)
_ACTIVATE_REPLY = int(MsgType.ACTIVATE_REPLY)
_REQUEST_SIZE = _REQUEST.size
_REPLY_SIZE = _REPLY.size
_new_tuple = tuple.__new__


class RawRequest(NamedTuple):
    """An activation request as bytes and ints, as the host's hot path reads it.

    UUIDs stay 16 raw bytes; :class:`ActivateRequest` is the same request as values.
    """

    sku: bytes  #: SKU id, 16 bytes
    cmid: bytes  #: client machine id, 16 bytes
    nonce: bytes  #: 16 bytes
    client_time: int  #: Unix seconds, client clock
    state: int  #: :class:`LicenseState` value
    minutes_left: int  #: minutes of grace or validity left
    vm: bool  #: virtual machine flag
    workstation: str  #: machine name
    version: int = PROTOCOL_VERSION  #: the frame's protocol version (2: move hints understood)


def decode_request(frame: bytes) -> RawRequest:
    """One whole ACTIVATE frame → :class:`RawRequest`; :class:`DecodeError` otherwise."""
    n = len(frame)
    if n < _REQUEST_SIZE:
        raise DecodeError(f"activation request is truncated ({n} bytes)")
    length, version, kind, sku, cmid, nonce, t, state, minutes, flags, name_len = (
        _REQUEST.unpack_from(frame)
    )
    # One test for a well-formed request; the error, if any, is found below.
    if not (
        length == n - LENGTH_BYTES
        and version in ACTIVATE_VERSIONS
        and kind == _ACTIVATE
        and name_len <= MAX_WORKSTATION_BYTES
        and n == _REQUEST_SIZE + name_len
        and state in _STATES
        and flags <= 1
    ):
        _request_error(n, length, version, kind, name_len, state, flags)
    try:
        name = frame[_REQUEST_SIZE:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("activation request: text is not UTF-8") from exc
    # tuple.__new__: the NamedTuple without its Python-level constructor (one call less).
    return _new_tuple(
        RawRequest, (sku, cmid, nonce, t, state, minutes, flags == 1, name, version)
    )


def _request_error(
    n: int, length: int, version: int, kind: int, name_len: int, state: int, flags: int
) -> None:
    """Raise the :class:`DecodeError` that says what is wrong with an activation request."""
    if length != n - LENGTH_BYTES:
        raise DecodeError(f"frame says {length} bytes follow, {n - LENGTH_BYTES} do")
    if version not in ACTIVATE_VERSIONS:
        raise DecodeError(f"protocol version {version} is not supported")
    if kind != MsgType.ACTIVATE:
        raise DecodeError(f"message type {kind} is not an activation request")
    if name_len > MAX_WORKSTATION_BYTES:
        raise DecodeError(f"workstation name of {name_len} bytes exceeds {MAX_WORKSTATION_BYTES}")
    if n != _REQUEST_SIZE + name_len:
        raise DecodeError("activation request length does not match its contents")
    if state not in _STATES:
        raise DecodeError(f"unknown license state {state}")
    raise DecodeError(f"unknown request flags 0x{flags:02x}")


def encode_reply(
    result: int,
    count: int,
    required: int,
    activation_interval: int,
    renewal_interval: int,
    host_id: bytes,
    ticket: bytes = b"",
    version: int = PROTOCOL_VERSION,
) -> bytes:
    """One ACTIVATE_REPLY frame from plain values (the host's hot path).

    A wrong-sized host id or ticket is a :class:`UsageError` (``struct`` would pad
    or cut it silently); out-of-range integers are too.
    """
    if len(host_id) != HOST_ID_BYTES:
        raise UsageError(f"host id must be {HOST_ID_BYTES} bytes")
    n = len(ticket)
    if n and n != ticket_bytes(version):
        raise UsageError(f"a ticket in a version-{version} reply is {ticket_bytes(version)} bytes")
    try:
        head = _REPLY.pack(
            _REPLY_SIZE - LENGTH_BYTES + n, version, _ACTIVATE_REPLY,
            result, count, required, activation_interval, renewal_interval, host_id,
        )  # fmt: skip
    except struct.error as exc:
        raise UsageError(f"activation reply field out of range: {exc}") from exc
    return head + ticket


def _frame(kind: MsgType, payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        raise UsageError(f"a payload of {len(payload)} bytes does not fit in a frame")
    return _HEADER.pack(len(payload) + 2, PROTOCOL_VERSION, kind) + payload


def encode(msg: Message) -> bytes:
    """One complete frame for ``msg``."""
    if isinstance(msg, ActivateRequest):
        name = msg.workstation.encode("utf-8")
        try:
            head = _REQUEST.pack(
                _REQUEST.size - LENGTH_BYTES + len(name), msg.version, MsgType.ACTIVATE,
                msg.sku.bytes, msg.cmid.bytes, msg.nonce, msg.client_time, msg.state,
                msg.minutes_left, 1 if msg.vm else 0, len(name),
            )  # fmt: skip
        except struct.error as exc:
            raise UsageError(f"activation request field out of range: {exc}") from exc
        return head + name
    if isinstance(msg, ActivateReply):
        return encode_reply(
            msg.result, msg.count, msg.required, msg.activation_interval,
            msg.renewal_interval, msg.host_id, msg.ticket or b"", msg.version,
        )  # fmt: skip
    if isinstance(msg, GetLicense):
        return _frame(MsgType.GET_LICENSE, b"")
    return _frame(MsgType.LICENSE_REPLY, msg.host_license)


def decode(frame: bytes, *, max_frame: int = MAX_REPLY_FRAME) -> Message:
    """Decode exactly one complete frame (no more, no less)."""
    n = len(frame)
    if n > max_frame:
        raise DecodeError(f"frame of {n} bytes exceeds the limit of {max_frame}")
    if n < _HEADER.size:
        raise DecodeError(f"frame is truncated: needs {_HEADER.size} bytes, has {n}")
    length, version, kind = _HEADER.unpack_from(frame)
    if length != n - LENGTH_BYTES:
        raise DecodeError(f"frame says {length} bytes follow, {n - LENGTH_BYTES} do")
    activation = kind in (MsgType.ACTIVATE, MsgType.ACTIVATE_REPLY)
    if version not in (ACTIVATE_VERSIONS if activation else (PROTOCOL_VERSION,)):
        raise DecodeError(f"protocol version {version} is not supported")
    if kind == MsgType.ACTIVATE:
        raw = decode_request(frame)
        return ActivateRequest(
            uuid.UUID(bytes=raw.sku), uuid.UUID(bytes=raw.cmid), raw.nonce, raw.client_time,
            LicenseState(raw.state), raw.minutes_left, raw.vm, raw.workstation, raw.version,
        )  # fmt: skip
    if kind == MsgType.ACTIVATE_REPLY:
        return _decode_reply(frame)
    if kind == MsgType.GET_LICENSE:
        if n != _HEADER.size:
            raise DecodeError(f"license request has {n - _HEADER.size} unexpected trailing bytes")
        return GetLicense()
    if kind == MsgType.LICENSE_REPLY:
        return LicenseReply(bytes(frame[_HEADER.size :]))
    raise DecodeError(f"unknown message type {kind}")


def _decode_reply(frame: bytes) -> ActivateReply:
    n = len(frame)
    if n < _REPLY.size:
        raise DecodeError(f"activation reply is truncated: needs {_REPLY.size} bytes, has {n}")
    _, version, _, raw_result, count, required, act, ren, host_id = _REPLY.unpack_from(frame)
    result = _RESULTS.get(raw_result)
    if result is None:
        raise DecodeError(f"unknown result code {raw_result}")
    expected = _REPLY.size + (ticket_bytes(version) if result is Result.OK else 0)
    if n != expected:
        what = "truncated" if n < expected else "followed by unexpected trailing bytes"
        raise DecodeError(f"activation reply is {what}: {n} bytes, expected {expected}")
    ticket = bytes(frame[_REPLY.size :]) if result is Result.OK else None
    return ActivateReply(result, count, required, act, ren, host_id, ticket, version)


# -- framing ---------------------------------------------------------------------


def _preview(data: bytes, limit: int = 24) -> str:
    """The first bytes a peer sent, safe to print: ASCII letters as they are, the rest escaped."""
    shown = "".join(
        chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in data[:limit]
    )
    return f"'{shown}{'...' if len(data) > limit else ''}'"


def _looks_like_text(data: bytes) -> bool:
    # A volact frame's first byte is at most 0x07 (frames are under 2 KiB); text
    # protocols (HTTP, SMTP, SSH banners) start with printable ASCII.
    return len(data) >= LENGTH_BYTES and all(0x20 <= b < 0x7F for b in data[:LENGTH_BYTES])


class FrameReader:
    """Cuts a byte stream into whole frames, sans-I/O (h11's ``receive_data`` shape).

    :meth:`feed` takes whatever the socket delivered, however it was split, and
    returns the frames it completed (often none, rarely more than one). A frame
    longer than ``max_frame``, or shorter than a header, is an error as soon as its
    first two bytes are in: :class:`DecodeError`, or :class:`NotVolactError` when
    the peer plainly speaks another protocol (an HTTP server answering a client,
    a browser talking to a host). After an error the reader stays broken: every
    later call raises the same error. :meth:`eof` says whether the stream may end
    here. It does not decode what is inside a frame (that is :func:`decode`'s job).
    """

    __slots__ = ("_buf", "_error", "max_frame", "peer")

    def __init__(self, max_frame: int, *, peer: str = "peer") -> None:
        #: the largest frame accepted, length field included
        self.max_frame = max_frame
        #: what the other side should be, for messages ("host", "client")
        self.peer = peer
        self._buf = b""
        self._error: DecodeError | None = None

    @staticmethod
    def is_one_frame(data: bytes, max_frame: int) -> bool:
        """Whether ``data`` is exactly one whole frame of at most ``max_frame`` bytes.

        The usual first read of a connection: a server that gets it needs no reader
        for that connection (:meth:`feed` would return ``[data]``).
        """
        n = len(data)
        return (
            HEADER_BYTES <= n <= max_frame
            and type(data) is bytes
            and LENGTH_BYTES + ((data[0] << 8) | data[1]) == n
        )

    @property
    def buffered(self) -> int:
        """Bytes received that are not part of a returned frame yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """The frames that ``data`` completes, in order; raises on oversize or garbage."""
        if self._error is not None:
            raise self._error
        if not self._buf and len(data) >= HEADER_BYTES and type(data) is bytes:
            # The usual case, kept short: one whole frame in one read.
            need = LENGTH_BYTES + ((data[0] << 8) | data[1])
            if need == len(data) and need <= self.max_frame:
                return [data]
        buf = self._buf + data if self._buf else bytes(data)
        frames: list[bytes] = []
        while len(buf) >= LENGTH_BYTES:
            need = LENGTH_BYTES + ((buf[0] << 8) | buf[1])
            if need > self.max_frame or need < HEADER_BYTES:
                self._buf = b""
                self._error = self._garbage(buf, need)
                raise self._error
            if len(buf) < need:
                break
            if len(buf) == need:  # the usual case: one whole frame in one read
                frames.append(buf)
                buf = b""
                break
            frames.append(buf[:need])
            buf = buf[need:]
        self._buf = buf
        return frames

    def eof(self) -> None:
        """The stream ended: a :class:`DecodeError` if a frame was cut short."""
        if self._error is not None:
            raise self._error
        if self._buf:
            raise DecodeError(
                f"the {self.peer} closed the connection after {len(self._buf)} bytes of a frame"
            )

    def _garbage(self, buf: bytes, need: int) -> DecodeError:
        if _looks_like_text(buf):
            return NotVolactError(f"that is not a volact {self.peer}: it sent {_preview(buf)}")
        if need < HEADER_BYTES:
            return DecodeError(f"frame length {need - LENGTH_BYTES} is too short")
        return DecodeError(f"frame of {need} bytes exceeds {self.max_frame}")
