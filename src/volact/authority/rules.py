"""The authority's decisions, with no I/O: key limits, MAK machines, refusals.

Given what the store read (a key's record, the host or machine already on it)
and a request, these functions say what to do: activate a new host, reactivate
one, repeat an earlier answer, consume one MAK activation, or refuse with a
specific :class:`Refusal`. They also build the documents the vendor key signs.
The store applies the decision inside one transaction that holds the key row, so
the limits hold under any concurrency; this module must not import a database,
a socket or the clock (``now`` is passed in).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from volact.catalog import Catalog
from volact.documents import HostLicense, MakConfirmation, installation_id
from volact.errors import KeyFormatError, VolactError
from volact.exchanges import HostActivationRequest, MakRequest
from volact.keys import CHECKSUM_FAILS, KeyKind, ProductKey

#: Hosts one host key activates by default (ms).
DEFAULT_HOST_ACTIVATIONS = 6
#: Times each of those hosts may be reactivated by default (ms).
DEFAULT_HOST_REACTIVATIONS = 9
#: Machines one MAK activates when ``issue-key`` is not told otherwise.
DEFAULT_MAK_ACTIVATIONS = 100
#: Upper bound on any key's activations (keeps counters far from overflow).
MAX_ACTIVATIONS = 10_000_000
#: Most requests one proxy batch may carry.
BATCH_LIMIT = 1000
#: Mistyped keys per request whose typo is located (each costs milliseconds of CPU).
TYPO_SEARCHES = 1


class Refusal(VolactError):
    """The authority refuses a request; ``code`` is stable and goes on the wire."""

    code = "refused"


class MalformedRequest(Refusal):
    """The request is not well formed or is inconsistent with itself."""

    code = "malformed_request"


class WrongKeyKind(Refusal):
    """A key of another kind than the endpoint takes (a MAK given to host activation)."""

    code = "wrong_key_kind"


class ExhaustedKey(Refusal):
    """The key has no activations (or reactivations) left."""

    code = "exhausted_key"


class RevokedKey(Refusal):
    """The vendor revoked the key or the host."""

    code = "revoked"


class HostIdTaken(Refusal):
    """Another host key already activated this host id (ids are unique per authority)."""

    code = "host_id_taken"


class UnknownHost(Refusal):
    """No host with this id was ever activated by this authority."""

    code = "unknown_host"


class TooLarge(Refusal):
    """A request carries more than the authority takes at once (a batch over the limit)."""

    code = "too_large"


class SkuNotCovered(Refusal):
    """The MAK does not cover the SKU the machine runs."""

    code = "sku_not_covered"


@dataclass(frozen=True)
class KeyRecord:
    """What the authority knows about one issued key."""

    serial: bytes  #: the key's 12-byte serial (its identity)
    kind: KeyKind  #: host key or MAK
    group: str  #: the product group the key was issued for
    activation_limit: int  #: distinct hosts (host key) or machines (MAK) it may activate
    reactivation_limit: int  #: reactivations allowed per host (host keys; 0 for MAKs)
    used: int  #: distinct hosts or machines activated so far
    revoked: bool = False  #: the vendor revoked it

    @property
    def left(self) -> int:
        return max(0, self.activation_limit - self.used)

    @property
    def text(self) -> str:
        return ProductKey(self.kind, self.serial).text


@dataclass(frozen=True)
class HostRecord:
    """One host activated with a host key."""

    host_id: bytes  #: the host's 8-byte id
    host_public_key: bytes  #: the public key of its latest activation
    activations: int  #: 1 + reactivations so far


class HostOutcome(enum.Enum):
    """What a host-key activation does to the store."""

    NEW_HOST = "new_host"  #: consumes one of the key's hosts
    REACTIVATION = "reactivation"  #: same host, new public key: consumes a reactivation
    REPEAT = "repeat"  #: same host and key again (a retry): consumes nothing


class MakOutcome(enum.Enum):
    """What a MAK activation does to the store."""

    NEW_MACHINE = "new_machine"  #: consumes one activation
    REPEAT = "repeat"  #: a machine the key already activated: consumes nothing


def parse_key(text: str, expected: KeyKind) -> ProductKey:
    """The key, or :class:`KeyFormatError` / :class:`WrongKeyKind`."""
    return expect_kind(ProductKey.parse(text), expected)


def expect_kind(key: ProductKey, expected: KeyKind) -> ProductKey:
    """``key`` if it is of the ``expected`` kind, else :class:`WrongKeyKind`."""
    if key.kind is not expected:
        raise WrongKeyKind(
            f"this is a {key.kind.label} key; this activation takes a {expected.label} key"
        )
    return key


class KeyParser:
    """Parses the keys of one request: each distinct text once, typos located a few times.

    Locating a typo tries every single substitution and swap (milliseconds of
    CPU); a request full of mistyped keys gets the location for the first
    ``searches`` of them and a plain "checksum fails" for the rest. ``searched``
    says how many searches ran, for the rate limiter to charge.
    """

    def __init__(self, searches: int = TYPO_SEARCHES) -> None:
        self.searches = searches
        self.searched = 0
        self._seen: dict[str, ProductKey | KeyFormatError] = {}

    def parse(self, text: str) -> ProductKey | KeyFormatError:
        """The key, or the error that says how it is mistyped (returned, not raised)."""
        found = self._seen.get(text)
        if found is None:
            found = self._seen[text] = self._parse(text)
        return found

    def _parse(self, text: str) -> ProductKey | KeyFormatError:
        try:
            return ProductKey.parse(text, locate=False)
        except KeyFormatError as exc:
            if str(exc) != CHECKSUM_FAILS or self.searched >= self.searches:
                return exc
        self.searched += 1
        try:
            return ProductKey.parse(text)
        except KeyFormatError as exc:
            return exc


def check_mak_request(
    req: MakRequest, catalog: Catalog, key: ProductKey | None = None
) -> ProductKey:
    """Checks that need no store: key format and kind, installation id, known SKU.

    ``key`` is the request's key already parsed (by a :class:`KeyParser`), if it was.
    """
    key = parse_key(req.mak, KeyKind.MAK) if key is None else expect_kind(key, KeyKind.MAK)
    if req.installation_id != installation_id(req.cmid, req.sku):
        raise MalformedRequest(
            "the installation id does not match the machine id and SKU: "
            "regenerate the request on the machine"
        )
    if catalog.find_sku(req.sku) is None:
        raise MalformedRequest(f"SKU {req.sku} is not in this vendor's catalog")
    return key


def decide_host(
    key: KeyRecord,
    existing: HostRecord | None,
    host_public_key: bytes,
    *,
    host_revoked: bool,
    owner: bytes | None = None,
) -> HostOutcome:
    """Whether a host-key activation may proceed, and what it consumes.

    ``owner`` is the serial of the host key that first activated this host id, if
    any: a host id belongs to one host key across the authority, so a host that
    copies another's id (it is in every reply) cannot be signed under its key.
    """
    if key.kind is not KeyKind.HOST:
        raise WrongKeyKind(f"this is a {key.kind.label} key; host activation takes a host key")
    if key.revoked:
        raise RevokedKey("the vendor has revoked this host key")
    if host_revoked:
        raise RevokedKey("the vendor has revoked this host")
    if owner is not None and owner != key.serial:
        raise HostIdTaken(
            "another host key already activated a host with this id; host ids are unique: "
            "give this host a new id (a fresh host home) and activate again"
        )
    if existing is None:
        if key.used >= key.activation_limit:
            raise ExhaustedKey(
                f"this host key has activated all of its {key.activation_limit} hosts; "
                "reactivate one of them or ask the vendor for another host key"
            )
        return HostOutcome.NEW_HOST
    if existing.host_public_key == host_public_key:
        return HostOutcome.REPEAT
    if existing.activations >= 1 + key.reactivation_limit:
        raise ExhaustedKey(
            f"host {existing.host_id.hex()} has used all {key.reactivation_limit} "
            "reactivations of this host key; ask the vendor for another host key"
        )
    return HostOutcome.REACTIVATION


def decide_mak(
    key: KeyRecord,
    catalog: Catalog,
    sku: uuid.UUID,
    *,
    machine_known: bool,
    used: int | None = None,
) -> MakOutcome:
    """Whether a MAK activation may proceed, and whether it consumes an activation.

    ``used`` overrides ``key.used`` (a batch counts its own new machines as it goes).
    """
    if key.kind is not KeyKind.MAK:
        raise WrongKeyKind(f"this is a {key.kind.label} key; MAK activation takes a MAK")
    if key.revoked:
        raise RevokedKey("the vendor has revoked this MAK")
    found = catalog.find_sku(sku)
    if found is None:
        raise MalformedRequest(f"SKU {sku} is not in this vendor's catalog")
    if found.group not in catalog.activatable_groups(key.group):
        raise SkuNotCovered(
            f"this MAK covers product group {key.group!r}; {found.name} is in {found.group!r}"
        )
    if machine_known:
        return MakOutcome.REPEAT
    if (key.used if used is None else used) >= key.activation_limit:
        raise ExhaustedKey(
            f"this MAK has used all of its {key.activation_limit} activations; "
            "ask the vendor for more"
        )
    return MakOutcome.NEW_MACHINE


def host_license(
    vendor_key_id: bytes,
    key: KeyRecord,
    req: HostActivationRequest,
    catalog: Catalog,
    now: int,
) -> HostLicense:
    """The license to sign for an accepted host activation."""
    return HostLicense(
        vendor_key_id=vendor_key_id,
        host_id=req.host_id,
        host_public_key=req.host_public_key,
        host_key_id=key.serial,
        groups=tuple(sorted(catalog.activatable_groups(key.group))),
        issued_at=now,
        expires_at=None,
    )


def mak_confirmation(
    vendor_key_id: bytes, key: KeyRecord, req: MakRequest, now: int
) -> MakConfirmation:
    """The confirmation to sign for an accepted MAK activation."""
    return MakConfirmation(
        vendor_key_id=vendor_key_id,
        mak_id=key.serial,
        cmid=req.cmid,
        sku=req.sku,
        installation_id=req.installation_id,
        issued_at=now,
    )


def check_limits(kind: KeyKind, activations: int, reactivations: int) -> None:
    """Refuse limits ``issue-key`` must not store."""
    if kind is KeyKind.GVLK:
        raise MalformedRequest("GVLKs are derived per SKU, not issued")
    if not 1 <= activations <= MAX_ACTIVATIONS:
        raise MalformedRequest(f"activations must be 1..{MAX_ACTIVATIONS}")
    if not 0 <= reactivations <= 1000:
        raise MalformedRequest("reactivations must be 0..1000")
