"""Signed documents: host license, activation ticket, MAK confirmation, revocation list.

Each document is a compact binary body (type byte, version byte, fields) followed
by a 64-byte Ed25519 signature over the body. The type byte at the front keeps a
signature over one kind of document from being read as another. Layouts are in
``docs/protocol.md``; golden encodings are in ``tests/vectors/``.

Trust chain: vendor key → host license → activation ticket; vendor key → MAK
confirmation; vendor key → revocation list. The ``verify_*`` functions return the
verified document or raise a specific :class:`~volact.errors.VerificationError`.
No I/O; time is passed in as Unix seconds.
"""

from __future__ import annotations

import enum
import hashlib
import struct
import uuid
from dataclasses import dataclass

from volact.buffer import Reader, Writer
from volact.catalog import Catalog
from volact.errors import (
    DecodeError,
    Expired,
    Revoked,
    SkuNotCovered,
    UnknownVendor,
    UsageError,
    WrongHost,
    WrongMachine,
    WrongNonce,
)
from volact.keys import SERIAL_BYTES
from volact.signing import (
    KEY_ID_BYTES,
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    SigningKey,
    key_id,
    verify,
)

DOC_VERSION = 1
#: The ticket's second version: version 1's fields and a flags byte (bit 0: move),
#: signed like the rest. A host sends it only to a client that spoke protocol
#: version 2, so a version-1 client never meets it (``docs/protocol.md``).
TICKET_VERSION_MOVE = 2
#: Ticket flag: the host still grants, and asks the client to re-discover elsewhere.
TICKET_FLAG_MOVE = 0x01
HOST_ID_BYTES = 8
NONCE_BYTES = 16
INSTALLATION_ID_BYTES = 16
MAX_GROUPS = 16
MAX_GROUP_NAME = 32


class DocType(enum.IntEnum):
    HOST_LICENSE = 0x11
    TICKET = 0x12
    MAK_CONFIRMATION = 0x13
    REVOCATION_LIST = 0x14


def _header(r: Reader, expected: DocType, versions: tuple[int, ...] = (DOC_VERSION,)) -> int:
    t = r.u8()
    if t != expected:
        raise DecodeError(f"expected a {expected.name.lower()} document, got type 0x{t:02x}")
    v = r.u8()
    if v not in versions:
        raise DecodeError(f"{expected.name.lower()} version {v} is not supported")
    return v


def _split(data: bytes, what: str) -> tuple[bytes, bytes]:
    if len(data) < SIGNATURE_BYTES + 2:
        raise DecodeError(f"{what} is truncated ({len(data)} bytes)")
    return bytes(data[:-SIGNATURE_BYTES]), bytes(data[-SIGNATURE_BYTES:])


@dataclass(frozen=True)
class HostLicense:
    """The vendor's statement that a host may activate some product groups."""

    vendor_key_id: bytes  #: fingerprint of the vendor key that signs this license
    host_id: bytes  #: 8 bytes chosen at host init; stable across re-activation
    host_public_key: bytes  #: the host's Ed25519 key, which signs its tickets
    host_key_id: bytes  #: serial of the host key that was activated
    groups: tuple[str, ...]  #: product groups the host may activate
    issued_at: int  #: Unix seconds
    expires_at: int | None = None  #: Unix seconds, or None for no expiry

    def __post_init__(self) -> None:
        _check_len("vendor key id", self.vendor_key_id, KEY_ID_BYTES)
        _check_len("host id", self.host_id, HOST_ID_BYTES)
        _check_len("host public key", self.host_public_key, PUBLIC_KEY_BYTES)
        _check_len("host key id", self.host_key_id, SERIAL_BYTES)
        if not 1 <= len(self.groups) <= MAX_GROUPS:
            raise UsageError(f"a host license names 1..{MAX_GROUPS} groups")

    def body(self) -> bytes:
        w = Writer().u8(DocType.HOST_LICENSE).u8(DOC_VERSION)
        w.raw(self.vendor_key_id).raw(self.host_id).raw(self.host_public_key)
        w.raw(self.host_key_id).i64(self.issued_at).i64(self.expires_at or 0)
        w.u8(len(self.groups))
        for g in self.groups:
            w.short_text(g, MAX_GROUP_NAME)
        return w.getvalue()

    def sign(self, vendor: SigningKey) -> bytes:
        if vendor.key_id != self.vendor_key_id:
            raise UsageError("the license names another vendor key")
        body = self.body()
        return body + vendor.sign(body)

    @classmethod
    def decode(cls, data: bytes) -> tuple[HostLicense, bytes, bytes]:
        """(license, signed body, signature); checks structure, not the signature."""
        body, sig = _split(data, "host license")
        r = Reader(body, "host license")
        _header(r, DocType.HOST_LICENSE)
        vendor, host_id = r.raw(KEY_ID_BYTES), r.raw(HOST_ID_BYTES)
        pub, hk = r.raw(PUBLIC_KEY_BYTES), r.raw(SERIAL_BYTES)
        issued, expires = r.i64(), r.i64()
        n = r.u8()
        if not 1 <= n <= MAX_GROUPS:
            raise DecodeError(f"host license names {n} groups")
        groups = tuple(r.short_text(MAX_GROUP_NAME) for _ in range(n))
        r.end()
        return cls(vendor, host_id, pub, hk, groups, issued, expires or None), body, sig


@dataclass(frozen=True)
class ActivationTicket:
    """A host's signed grant of activation to one machine, for one request."""

    cmid: uuid.UUID  #: the client machine id the ticket is for
    sku: uuid.UUID  #: the SKU activated
    nonce: bytes  #: the client's request nonce (16 bytes): binds the ticket to the request
    host_id: bytes  #: the host that signed it
    issued_at: int  #: Unix seconds (host clock)
    valid_until: int  #: Unix seconds; the activation lapses after this
    activation_interval: int  #: minutes between retries while not activated
    renewal_interval: int  #: minutes between renewals once activated
    count: int  #: the host's count when it granted
    #: version 2 only: the host asks the client to re-discover another host (rebalance)
    move: bool = False
    #: 1, or :data:`TICKET_VERSION_MOVE` (which adds the flags byte)
    version: int = DOC_VERSION

    SIZE = 86 + SIGNATURE_BYTES  #: a version-1 ticket
    SIZE_V2 = 87 + SIGNATURE_BYTES  #: a version-2 ticket (one flags byte more)

    def __post_init__(self) -> None:
        _check_len("nonce", self.nonce, NONCE_BYTES)
        _check_len("host id", self.host_id, HOST_ID_BYTES)
        if self.version not in (DOC_VERSION, TICKET_VERSION_MOVE):
            raise UsageError(f"ticket version {self.version} does not exist")
        if self.move and self.version < TICKET_VERSION_MOVE:
            raise UsageError("a version-1 ticket cannot carry a move hint")

    def body(self) -> bytes:
        return ticket_body(
            self.cmid.bytes, self.sku.bytes, self.nonce, self.host_id, self.issued_at,
            self.valid_until, self.activation_interval, self.renewal_interval, self.count,
            self.move if self.version >= TICKET_VERSION_MOVE else None,
        )  # fmt: skip

    def sign(self, host: SigningKey) -> bytes:
        body = self.body()
        return body + host.sign(body)

    @classmethod
    def decode(cls, data: bytes) -> tuple[ActivationTicket, bytes, bytes]:
        body, sig = _split(data, "activation ticket")
        versions = (DOC_VERSION, TICKET_VERSION_MOVE)
        version = _header(Reader(body[:2], "activation ticket"), DocType.TICKET, versions)
        size = _TICKET_BODY.size + (1 if version >= TICKET_VERSION_MOVE else 0)
        if len(body) != size:
            raise DecodeError(f"activation ticket body is {len(body)} bytes, not {size}")
        _, _, cmid, sku, nonce, host_id, issued, until, act, ren, count = (
            _TICKET_BODY.unpack_from(body)
        )
        move = False
        if version >= TICKET_VERSION_MOVE:
            flags = body[-1]
            if flags & ~TICKET_FLAG_MOVE:
                raise DecodeError(f"unknown ticket flags 0x{flags:02x}")
            move = bool(flags & TICKET_FLAG_MOVE)
        t = cls(
            uuid.UUID(bytes=cmid), uuid.UUID(bytes=sku), nonce, host_id, issued, until, act,
            ren, count, move, version,
        )  # fmt: skip
        return t, body, sig


#: type, version, cmid, sku, nonce, host id, issued, valid until, activation
#: interval, renewal interval, count: a ticket's signed body.
_TICKET_BODY = struct.Struct(">BB16s16s16s8sqqIII")
#: A version-2 ticket's flags byte, after the version-1 fields.
_MOVE, _STAY = bytes((TICKET_FLAG_MOVE,)), b"\x00"
_TICKET = int(DocType.TICKET)  # a plain int: an enum member is a slower lookup


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
    move: bool | None = None,
) -> bytes:
    """A ticket's signed body from plain values: one ``struct`` call (the host's hot path).

    The same bytes as ``ActivationTicket(...).body()``, which calls it. A
    wrong-sized field is a :class:`UsageError` (``struct`` would pad or cut it).
    ``move`` None makes a version-1 body; True or False a version-2 body whose
    flags byte says whether the client is asked to move.
    """
    if len(host_id) != HOST_ID_BYTES:
        raise UsageError(f"host id must be {HOST_ID_BYTES} bytes")
    if len(cmid) != 16 or len(sku) != 16 or len(nonce) != NONCE_BYTES:
        raise UsageError("cmid, sku and nonce must be 16 bytes each")
    version = DOC_VERSION if move is None else TICKET_VERSION_MOVE
    try:
        body = _TICKET_BODY.pack(
            _TICKET, version, cmid, sku, nonce, host_id, issued_at, valid_until,
            activation_interval, renewal_interval, count,
        )  # fmt: skip
    except struct.error as exc:
        raise UsageError(f"ticket field out of range: {exc}") from exc
    return body if move is None else body + (_MOVE if move else _STAY)


def installation_id(cmid: uuid.UUID, sku: uuid.UUID) -> bytes:
    """The id a MAK activation binds to: one machine (CMID) running one SKU."""
    return hashlib.sha256(b"volact-iid\x00" + cmid.bytes + sku.bytes).digest()[
        :INSTALLATION_ID_BYTES
    ]


@dataclass(frozen=True)
class MakConfirmation:
    """The vendor's permanent activation of one machine by a MAK."""

    vendor_key_id: bytes  #: the signing vendor key
    mak_id: bytes  #: serial of the MAK used
    cmid: uuid.UUID  #: the machine
    sku: uuid.UUID  #: the SKU activated
    installation_id: bytes  #: ``installation_id(cmid, sku)``
    issued_at: int  #: Unix seconds

    def __post_init__(self) -> None:
        _check_len("vendor key id", self.vendor_key_id, KEY_ID_BYTES)
        _check_len("MAK id", self.mak_id, SERIAL_BYTES)
        _check_len("installation id", self.installation_id, INSTALLATION_ID_BYTES)

    def body(self) -> bytes:
        w = Writer().u8(DocType.MAK_CONFIRMATION).u8(DOC_VERSION)
        w.raw(self.vendor_key_id).raw(self.mak_id).uuid(self.cmid).uuid(self.sku)
        w.raw(self.installation_id).i64(self.issued_at)
        return w.getvalue()

    def sign(self, vendor: SigningKey) -> bytes:
        body = self.body()
        return body + vendor.sign(body)

    @classmethod
    def decode(cls, data: bytes) -> tuple[MakConfirmation, bytes, bytes]:
        body, sig = _split(data, "MAK confirmation")
        r = Reader(body, "MAK confirmation")
        _header(r, DocType.MAK_CONFIRMATION)
        c = cls(
            r.raw(KEY_ID_BYTES), r.raw(SERIAL_BYTES), r.uuid(), r.uuid(),
            r.raw(INSTALLATION_ID_BYTES), r.i64(),
        )  # fmt: skip
        r.end()
        return c, body, sig


@dataclass(frozen=True)
class RevocationList:
    """Host keys and hosts the vendor no longer trusts."""

    vendor_key_id: bytes  #: the signing vendor key
    sequence: int  #: increases with every list; a client keeps the highest it saw
    issued_at: int  #: Unix seconds
    host_key_ids: frozenset[bytes] = frozenset()  #: revoked host-key serials
    host_ids: frozenset[bytes] = frozenset()  #: revoked hosts

    def body(self) -> bytes:
        w = Writer().u8(DocType.REVOCATION_LIST).u8(DOC_VERSION)
        w.raw(self.vendor_key_id).u32(self.sequence).i64(self.issued_at)
        w.u16(len(self.host_key_ids))
        for k in sorted(self.host_key_ids):
            w.raw(k)
        w.u16(len(self.host_ids))
        for h in sorted(self.host_ids):
            w.raw(h)
        return w.getvalue()

    def sign(self, vendor: SigningKey) -> bytes:
        body = self.body()
        return body + vendor.sign(body)

    @classmethod
    def decode(cls, data: bytes) -> tuple[RevocationList, bytes, bytes]:
        body, sig = _split(data, "revocation list")
        r = Reader(body, "revocation list")
        _header(r, DocType.REVOCATION_LIST)
        vendor, seq, issued = r.raw(KEY_ID_BYTES), r.u32(), r.i64()
        keys = frozenset(r.raw(SERIAL_BYTES) for _ in range(r.u16()))
        hosts = frozenset(r.raw(HOST_ID_BYTES) for _ in range(r.u16()))
        r.end()
        return cls(vendor, seq, issued, keys, hosts), body, sig

    def check(self, lic: HostLicense) -> None:
        if lic.host_key_id in self.host_key_ids:
            raise Revoked("the vendor has revoked this host's host key")
        if lic.host_id in self.host_ids:
            raise Revoked(f"the vendor has revoked host {lic.host_id.hex()}")


def _check_len(what: str, value: bytes, n: int) -> None:
    if len(value) != n:
        raise UsageError(f"{what} must be {n} bytes, not {len(value)}")


def _vendor(doc_vendor: bytes, vendor_public_key: bytes, what: str) -> None:
    if doc_vendor != key_id(vendor_public_key):
        raise UnknownVendor(
            f"{what} is signed by vendor key {doc_vendor.hex()}, not this product's"
        )


def verify_revocation_list(data: bytes, vendor_public_key: bytes) -> RevocationList:
    rl, body, sig = RevocationList.decode(data)
    _vendor(rl.vendor_key_id, vendor_public_key, "the revocation list")
    verify(vendor_public_key, sig, body, "revocation list")
    return rl


def verify_host_license(
    data: bytes,
    vendor_public_key: bytes,
    *,
    now: int,
    revocations: RevocationList | None = None,
) -> HostLicense:
    """The host license, if the vendor signed it and it is in force at ``now``."""
    lic, body, sig = HostLicense.decode(data)
    _vendor(lic.vendor_key_id, vendor_public_key, "the host license")
    verify(vendor_public_key, sig, body, "host license")
    if lic.expires_at is not None and now >= lic.expires_at:
        raise Expired("the host license has expired")
    if revocations is not None:
        revocations.check(lic)
    return lic


def verify_ticket(
    data: bytes,
    lic: HostLicense,
    catalog: Catalog,
    *,
    cmid: uuid.UUID,
    nonce: bytes | None,
) -> ActivationTicket:
    """The ticket, if ``lic``'s host signed it for this machine and request.

    ``nonce`` is the nonce of the request just sent; ``None`` when re-checking a
    stored ticket (whose nonce was checked when it arrived). The license must
    already be verified. Expiry is the state machine's business, not this one's.
    """
    t, body, sig = ActivationTicket.decode(data)
    if t.host_id != lic.host_id:
        raise WrongHost(
            f"the ticket names host {t.host_id.hex()}, the license host {lic.host_id.hex()}"
        )
    verify(lic.host_public_key, sig, body, "activation ticket")
    if t.cmid != cmid:
        raise WrongMachine(f"the ticket is for machine {t.cmid}, not {cmid}")
    if nonce is not None and t.nonce != nonce:
        raise WrongNonce("the ticket answers another request (nonce mismatch): a replay")
    sku = catalog.find_sku(t.sku)
    if sku is None or sku.group not in lic.groups:
        raise SkuNotCovered(f"the host's license does not cover SKU {t.sku}")
    return t


def verify_chain(
    vendor_public_key: bytes,
    catalog: Catalog,
    license_data: bytes,
    ticket_data: bytes,
    *,
    cmid: uuid.UUID,
    nonce: bytes | None,
    now: int,
    revocations: RevocationList | None = None,
) -> tuple[HostLicense, ActivationTicket]:
    """Vendor key → host license → ticket, all in one call."""
    lic = verify_host_license(license_data, vendor_public_key, now=now, revocations=revocations)
    return lic, verify_ticket(ticket_data, lic, catalog, cmid=cmid, nonce=nonce)


def verify_mak_confirmation(
    data: bytes,
    vendor_public_key: bytes,
    *,
    cmid: uuid.UUID,
    sku: uuid.UUID,
) -> MakConfirmation:
    """The confirmation, if the vendor signed it for this machine and SKU."""
    c, body, sig = MakConfirmation.decode(data)
    _vendor(c.vendor_key_id, vendor_public_key, "the MAK confirmation")
    verify(vendor_public_key, sig, body, "MAK confirmation")
    if c.cmid != cmid or c.installation_id != installation_id(cmid, sku):
        raise WrongMachine("the MAK confirmation is for another machine")
    if c.sku != sku:
        raise WrongMachine(f"the MAK confirmation is for SKU {c.sku}, not {sku}")
    return c
