"""A client's state as a value: what it keeps, how it is encoded, and every transition.

:class:`ClientState` is everything a client home remembers (the license schedule of
:class:`~volact.client.machine.Machine`, the installed key, discovery settings, the
stored ticket or MAK confirmation, cached host licenses, the newest revocation list).
This module owns it whole, without I/O and without a clock (STYLE §1-2, like h11's
``Connection``): every function takes the state and ``now`` and returns a new state.

- **The codec.** :func:`encode_state` / :func:`decode_state` turn a state into the
  bytes of ``state.json`` and back: a first line ``volact-client-state 1 <sha256 of
  the body>`` and a JSON body. Any changed byte raises
  :class:`~volact.errors.StoreError`. The checksum is not a secret: what stops
  someone from *extending* a license by editing the file is :func:`reverify`.
- **Trust.** :func:`reverify` takes validity only from documents that verify now
  (the stored ticket against its host license and the vendor key, or the MAK
  confirmation); the JSON's own ``valid_until`` is informational.
- **Transitions.** :func:`new_state` (init), :func:`install_key`, :func:`rearm`
  (written once: a manual rearm and a home found on another machine both use it),
  :func:`apply_outcome` (an attempt's end), :func:`mak_activated`,
  :func:`attempt_failed`, :func:`offer_revocations`; :func:`plan_attempt` builds the
  attempt planner for a state.

Where the bytes are kept is :mod:`volact.client.store`'s business; who calls the
transitions, and when, is :mod:`volact.client.api`'s. A new CMID, a nonce and the
search domains come in as arguments, so this module needs no randomness of its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from volact.client.machine import Machine, implausible_validity
from volact.client.planner import (
    DEFAULT_ATTEMPT_SECONDS,
    DEFAULT_EXCHANGE_SECONDS,
    AttemptPlanner,
    DiscoveryConfig,
    Outcome,
    Verifier,
    request_for,
)
from volact.client.srv import HostAddress
from volact.documents import (
    ActivationTicket,
    RevocationList,
    verify_host_license,
    verify_mak_confirmation,
    verify_revocation_list,
    verify_ticket,
)
from volact.errors import (
    ConfigurationError,
    DecodeError,
    StoreError,
    UsageError,
    VerificationError,
)
from volact.keys import KeyKind, ProductKey
from volact.profile import ProductProfile

STATE_FORMAT = "volact-client-state"
STATE_VERSION = 1
#: Host licenses kept in the cache (oldest dropped first).
MAX_CACHED_LICENSES = 64
#: Workstation names are cut to this many bytes of UTF-8 (the wire's limit).
MAX_WORKSTATION_BYTES = 63
#: What ``status().last_error`` says after a home was found on another machine.
MOVED_NOTICE = (
    "home moved to another machine: re-armed (new CMID, activation dropped, grace "
    "restarted); activate again"
)


@dataclass(frozen=True)
class LastReply:
    """What the last attempt ended with, for status."""

    at: int  #: Unix seconds
    host: str | None = None  #: the host that answered (or None)
    result: str | None = None  #: the host's result code by name, or None if none answered
    count: int | None = None  #: the host's count in its reply
    required: int | None = None  #: the required count in its reply
    error: str | None = None  #: why the attempt failed, if it did


@dataclass(frozen=True)
class ClientState:
    """Everything a client keeps about itself."""

    vendor_key_id: bytes  #: the vendor key of the profile this home was made with
    cmid: uuid.UUID  #: client machine id, random at init, renewed by rearm
    created_at: int  #: when the home was initialised
    machine: Machine = field(default_factory=Machine)  #: the license schedule
    key: str | None = None  #: the installed product key
    vm: bool = False  #: the machine reports itself as virtual
    workstation: str = ""  #: the name sent to hosts
    manual_host: HostAddress | None = None  #: set-host
    domain: str | None = None  #: set-domain
    host_caching: bool = True  #: host-caching on|off
    cached_host: HostAddress | None = None  #: the host that last answered
    last: LastReply | None = None  #: the last attempt's end
    ticket: bytes | None = None  #: the last accepted activation ticket
    ticket_license: bytes | None = None  #: the host license that ticket verified against
    mak_confirmation: bytes | None = None  #: the vendor's MAK confirmation
    licenses: dict[str, bytes] = field(default_factory=dict)  #: host id hex → license
    #: the newest vendor-signed revocation list seen (never replaced by an older one)
    revocations: bytes | None = None
    #: salted hash of the machine this home was made on (see ``identity.machine_fingerprint``)
    machine_fingerprint: str | None = None
    load_problem: str | None = None  #: why a stored ticket was dropped when loading

    @property
    def product_key(self) -> ProductKey | None:
        return None if self.key is None else ProductKey.parse(self.key)


# ---- the codec -----------------------------------------------------------------------


def _b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode()


def _unb64(v: Any) -> bytes | None:
    if v is None:
        return None
    return base64.b64decode(str(v), validate=True)


def _addr(v: Any) -> HostAddress | None:
    return None if v is None else HostAddress.parse(str(v))


def _opt_int(v: Any) -> int | None:
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"expected an integer, got {v!r}")
    return v


def state_to_json(s: ClientState) -> dict[str, Any]:
    """The JSON body of ``state.json``."""
    m = s.machine
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "vendor_key_id": s.vendor_key_id.hex(),
        "cmid": str(s.cmid),
        "created_at": s.created_at,
        "key": s.key,
        "vm": s.vm,
        "workstation": s.workstation,
        "manual_host": None if s.manual_host is None else str(s.manual_host),
        "domain": s.domain,
        "host_caching": s.host_caching,
        "cached_host": None if s.cached_host is None else str(s.cached_host),
        "machine": {
            "sku": None if m.sku is None else str(m.sku),
            "key_kind": None if m.key_kind is None else m.key_kind.label,
            "installed_at": m.installed_at,
            "activation_interval": m.activation_interval,
            "renewal_interval": m.renewal_interval,
            "intervals_from_host": m.intervals_from_host,
            "last_attempt_at": m.last_attempt_at,
            "last_attempt_ok": m.last_attempt_ok,
            "last_success_at": m.last_success_at,
            "moving_from": m.moving_from,
            # Informational: on load, validity comes from the re-verified documents.
            "valid_until": m.valid_until,
            "permanent": m.permanent,
        },
        "last": None if s.last is None else s.last.__dict__,
        "ticket": _b64(s.ticket),
        "ticket_license": _b64(s.ticket_license),
        "mak_confirmation": _b64(s.mak_confirmation),
        "licenses": {k: _b64(v) for k, v in sorted(s.licenses.items())},
        "revocations": _b64(s.revocations),
        "machine_fingerprint": s.machine_fingerprint,
    }


def _machine_from_json(o: dict[str, Any]) -> Machine:
    sku = None if o.get("sku") is None else uuid.UUID(str(o["sku"]))
    kind = None if o.get("key_kind") is None else KeyKind.from_label(str(o["key_kind"]))
    return Machine(
        sku=sku,
        key_kind=kind,
        installed_at=_opt_int(o.get("installed_at")),
        activation_interval=int(o["activation_interval"]),
        renewal_interval=int(o["renewal_interval"]),
        intervals_from_host=bool(o.get("intervals_from_host", False)),
        last_attempt_at=_opt_int(o.get("last_attempt_at")),
        last_attempt_ok=bool(o.get("last_attempt_ok", False)),
        last_success_at=_opt_int(o.get("last_success_at")),
        moving_from=None
        if o.get("moving_from") is None
        else str(HostAddress.parse(str(o["moving_from"]))),
    )


def state_from_json(o: Any) -> ClientState:
    """Parse the JSON body (structure only; see :func:`reverify` for trust)."""
    if not isinstance(o, dict) or o.get("format") != STATE_FORMAT:
        raise StoreError("the state file is not a volact client state")
    if o.get("version") != STATE_VERSION:
        raise StoreError(f"client state version {o.get('version')!r} is not supported")
    try:
        last = o.get("last")
        return ClientState(
            vendor_key_id=bytes.fromhex(str(o["vendor_key_id"])),
            cmid=uuid.UUID(str(o["cmid"])),
            created_at=int(o["created_at"]),
            machine=_machine_from_json(dict(o["machine"])),
            key=None if o.get("key") is None else str(o["key"]),
            vm=bool(o.get("vm", False)),
            workstation=str(o.get("workstation", ""))[:63],
            manual_host=_addr(o.get("manual_host")),
            domain=None if o.get("domain") is None else str(o["domain"]),
            host_caching=bool(o.get("host_caching", True)),
            cached_host=_addr(o.get("cached_host")),
            last=None if last is None else LastReply(**dict(last)),
            ticket=_unb64(o.get("ticket")),
            ticket_license=_unb64(o.get("ticket_license")),
            mak_confirmation=_unb64(o.get("mak_confirmation")),
            licenses={str(k): bytes(_unb64(v) or b"") for k, v in dict(o["licenses"]).items()},
            revocations=_unb64(o.get("revocations")),
            machine_fingerprint=None
            if o.get("machine_fingerprint") is None
            else str(o["machine_fingerprint"]),
        )
    except (KeyError, TypeError, ValueError, binascii.Error, ConfigurationError) as exc:
        raise StoreError(f"the client state is malformed: {exc}") from exc


def encode_state(state: ClientState) -> bytes:
    """The bytes of ``state.json``: the checksum line, then the JSON body."""
    body = json.dumps(state_to_json(state), indent=2, sort_keys=True).encode() + b"\n"
    digest = hashlib.sha256(body).hexdigest()
    return f"{STATE_FORMAT} {STATE_VERSION} {digest}\n".encode() + body


def decode_state(data: bytes) -> ClientState:
    """Parse a state file's bytes; any changed byte raises :class:`StoreError`."""
    head, sep, body = data.partition(b"\n")
    parts = head.split(b" ")
    if not sep or len(parts) != 3 or parts[0] != STATE_FORMAT.encode():
        raise StoreError("the state file's first line is damaged (not a volact client state)")
    if parts[1] != str(STATE_VERSION).encode():
        raise StoreError(f"client state version {parts[1]!r} is not supported")
    if hashlib.sha256(body).hexdigest().encode() != parts[2]:
        raise StoreError(
            "the state file was altered or damaged (checksum mismatch); "
            "restore it from a backup or re-initialise with `volact client init --force`"
        )
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError(f"the state file is not valid JSON: {exc}") from exc
    return state_from_json(obj)


# ---- trust ---------------------------------------------------------------------------


def newest_revocations(
    profile: ProductProfile, stored: bytes | None
) -> tuple[RevocationList | None, bytes | None]:
    """The revocation list in force: the higher sequence of the profile's and the stored
    one (both vendor-verified), with its bytes. A stored list that does not verify
    raises :class:`VerificationError`."""
    best = profile.revocation_list()
    best_bytes = profile.revocations
    if stored is not None:
        try:
            rl = verify_revocation_list(stored, profile.vendor_public_key)
        except DecodeError as exc:
            raise VerificationError(f"the revocation list is malformed: {exc}") from exc
        if best is None or rl.sequence > best.sequence:
            best, best_bytes = rl, stored
    return best, best_bytes


def revocation_sequence(state: ClientState, profile: ProductProfile) -> int | None:
    """The sequence of the revocation list in force (None: none, or it does not verify)."""
    try:
        rl, _ = newest_revocations(profile, state.revocations)
    except VerificationError:
        return None
    return None if rl is None else rl.sequence


def reverify(state: ClientState, profile: ProductProfile) -> ClientState:
    """``state`` with validity taken only from documents that verify now.

    A stored ticket must verify against the stored host license, which must verify
    against the profile's vendor key (as of the ticket's issue) and not be revoked
    (by the newer of the profile's and the stored revocation list), and name this
    CMID and the installed SKU; its validity is at most 180 days from its issue and
    ends no later than the license's expiry. A MAK confirmation must be the
    vendor's for this CMID and SKU. Whatever fails is dropped, and the reason kept.
    """
    if state.vendor_key_id != profile.vendor_key_id:
        raise VerificationError(
            "this client home was made with another vendor key than the product profile's"
        )
    m = state.machine
    problem: str | None = None
    stored_revocations = state.revocations
    try:
        revocations, _ = newest_revocations(profile, stored_revocations)
    except VerificationError as exc:
        problem = f"the stored revocation list was refused: {exc}"
        stored_revocations = None
        revocations = profile.revocation_list()
    valid_until: int | None = None
    permanent = False
    ticket, ticket_license, confirmation = (
        state.ticket,
        state.ticket_license,
        state.mak_confirmation,
    )
    if ticket is not None:
        try:
            if ticket_license is None or m.sku is None or m.key_kind is not KeyKind.GVLK:
                raise VerificationError("a stored ticket without its host license or setup key")
            issued = ActivationTicket.decode(ticket)[0].issued_at
            lic = verify_host_license(
                ticket_license,
                profile.vendor_public_key,
                now=issued,
                revocations=revocations,
            )
            t = verify_ticket(ticket, lic, profile.catalog, cmid=state.cmid, nonce=None)
            if t.sku != m.sku:
                raise VerificationError("the stored ticket is for another SKU")
            # Only the span is checked here: "now" may have moved since it arrived.
            why = implausible_validity(t.issued_at, t.valid_until, t.issued_at)
            if why is not None:
                raise VerificationError(why)
            valid_until = t.valid_until
            if lic.expires_at is not None:
                valid_until = min(valid_until, lic.expires_at)
        except (VerificationError, DecodeError) as exc:
            problem = f"the stored activation ticket was refused: {exc}"
            ticket = ticket_license = None
    if confirmation is not None:
        try:
            if m.sku is None or m.key_kind is not KeyKind.MAK:
                raise VerificationError("a stored MAK confirmation without a MAK installed")
            verify_mak_confirmation(
                confirmation, profile.vendor_public_key, cmid=state.cmid, sku=m.sku
            )
            permanent = True
        except (VerificationError, DecodeError) as exc:
            problem = f"the stored MAK confirmation was refused: {exc}"
            confirmation = None
    machine = m if m.sku is None else m.with_validity(valid_until, permanent)
    return replace(
        state,
        machine=machine,
        ticket=ticket,
        ticket_license=ticket_license,
        mak_confirmation=confirmation,
        revocations=stored_revocations,
        load_problem=problem,
    )


# ---- transitions ---------------------------------------------------------------------


def resolve_key(
    profile: ProductProfile, text: str, sku: str | None
) -> tuple[ProductKey, uuid.UUID]:
    """Parse a key (a mistype is refused here) and find the SKU it installs."""
    key = ProductKey.parse(text)
    if key.kind is KeyKind.HOST:
        raise UsageError(
            "this is a host key: it activates a key management host (`volact host install-key`), "
            "not a client"
        )
    if key.kind is KeyKind.GVLK:
        found = profile.sku_for_gvlk(key)
        if sku is not None and profile.catalog.sku(sku).id != found.id:
            raise UsageError(f"this setup key installs {found.name}, not {sku}")
        return key, found.id
    if sku is None:
        raise UsageError("a MAK does not name its product: give the SKU (--sku NAME_OR_ID)")
    return key, profile.catalog.sku(sku).id


def new_state(
    profile: ProductProfile,
    *,
    cmid: uuid.UUID,
    now: int,
    sku: str | None = None,
    vm: bool = False,
    workstation: str = "",
    machine_fingerprint: str | None = None,
) -> ClientState:
    """A new home's state: ``cmid`` and, with ``sku``, that SKU's setup key (GVLK)
    installed at ``now``; grace starts then."""
    machine = Machine()
    key_text: str | None = None
    if sku is not None:
        chosen = profile.catalog.sku(sku)
        if chosen.id not in profile.gvlks:
            raise ConfigurationError(f"the profile has no setup key (GVLK) for {chosen.name}")
        key_text = profile.gvlk(chosen).text
        machine = machine.install(now, chosen.id, KeyKind.GVLK)
    name = workstation.encode("utf-8")[:MAX_WORKSTATION_BYTES].decode("utf-8", "ignore")
    return ClientState(
        vendor_key_id=profile.vendor_key_id,
        cmid=cmid,
        created_at=now,
        machine=machine,
        key=key_text,
        vm=vm,
        workstation=name,
        machine_fingerprint=machine_fingerprint,
    )


def install_key(state: ClientState, now: int, key: ProductKey, sku: uuid.UUID) -> ClientState:
    """``key`` installed for ``sku``: the activation of another key is dropped. The
    same key and SKU again changes nothing (the same object is returned)."""
    machine = state.machine.install(now, sku, key.kind)
    if machine is state.machine:
        return state
    return replace(
        state,
        machine=machine,
        key=key.text,
        ticket=None,
        ticket_license=None,
        mak_confirmation=None,
        load_problem=None,
    )


def rearm(
    state: ClientState,
    *,
    now: int,
    cmid: uuid.UUID,
    reason: str | None = None,
    machine_fingerprint: str | None = None,
) -> ClientState:
    """A new machine: ``cmid``, no activation, no cached host, grace from ``now``.

    The key stays installed. ``reason`` (when the client re-armed itself, for example
    :data:`MOVED_NOTICE`) becomes the last error that status shows; with
    ``machine_fingerprint`` the home now belongs to that machine.
    """
    return replace(
        state,
        cmid=cmid,
        machine=state.machine.rearm(now),
        ticket=None,
        ticket_license=None,
        mak_confirmation=None,
        cached_host=None,
        last=None if reason is None else LastReply(at=now, error=reason),
        load_problem=None,
        machine_fingerprint=machine_fingerprint or state.machine_fingerprint,
    )


def same_request(before: ClientState, after: ClientState) -> bool:
    """Does an attempt started from ``before`` still answer ``after``? Not once the
    machine was re-armed or re-keyed meanwhile (its outcome is then discarded)."""
    return (
        after.cmid == before.cmid
        and after.machine.sku == before.machine.sku
        and after.machine.key_kind is before.machine.key_kind
    )


def plan_attempt(
    state: ClientState,
    profile: ProductProfile,
    *,
    now: int,
    nonce: bytes,
    search_domains: Sequence[str],
    rng: random.Random,
    started: float,
    time_limit: float = DEFAULT_ATTEMPT_SECONDS,
    exchange_timeout: float = DEFAULT_EXCHANGE_SECONDS,
) -> AttemptPlanner:
    """The planner of one activation attempt for ``state`` (see
    :mod:`volact.client.planner`); ``search_domains`` is used only when no domain and
    no manual host is set."""
    m = state.machine
    if m.sku is None:
        raise UsageError(
            "no product key is installed: run `volact client install-key` (or init with --sku)"
        )
    req = request_for(
        sku=m.sku,
        cmid=state.cmid,
        nonce=nonce,
        now=now,
        state=m.state(now),
        minutes_left=m.minutes_left(now),
        vm=state.vm,
        workstation=state.workstation,
    )
    config = DiscoveryConfig(
        label=profile.dns_label,
        manual_host=state.manual_host,
        domain=state.domain,
        search_domains=() if state.domain or state.manual_host else tuple(search_domains),
        caching=state.host_caching,
        cached_host=state.cached_host,
        avoid=None if m.moving_from is None else HostAddress.parse(m.moving_from),
    )
    return AttemptPlanner(
        request=req,
        verifier=Verifier(
            profile.vendor_public_key,
            profile.catalog,
            newest_revocations(profile, state.revocations)[0],
        ),
        config=config,
        licenses=cached_licenses(state),
        rng=rng,
        started=started,
        time_limit=time_limit,
        exchange_timeout=exchange_timeout,
    )


def cached_licenses(state: ClientState) -> Mapping[bytes, bytes]:
    """The cached host licenses by host id."""
    return {bytes.fromhex(k): v for k, v in state.licenses.items()}


def apply_outcome(state: ClientState, outcome: Outcome, now: int) -> ClientState:
    """The state after an attempt: the machine's transition plus what to remember."""
    m = state.machine
    ticket, ticket_license = state.ticket, state.ticket_license
    if outcome.ticket is not None and outcome.reply is not None:
        # Intervals from the signed ticket; validity capped by the host license's expiry.
        t = outcome.ticket
        valid_until = t.valid_until if outcome.valid_until is None else outcome.valid_until
        if m.valid_until is None or valid_until >= m.valid_until:
            ticket, ticket_license = outcome.ticket_bytes, outcome.license_bytes
        # A move hint matters only when hosts are found through DNS.
        moving = t.move and state.manual_host is None and outcome.host is not None
        m = m.succeeded(
            now,
            valid_until=valid_until,
            activation_interval=t.activation_interval,
            renewal_interval=t.renewal_interval,
            move_from=str(outcome.host) if moving else None,
        )
    elif outcome.reply is not None:
        # COUNT_TOO_LOW is unsigned: it may shorten the retry interval, never lengthen it.
        m = m.count_too_low(now, activation_interval=outcome.reply.activation_interval)
    else:
        m = m.failed(now)
    licenses = dict(state.licenses)
    for host_id, lic in outcome.new_licenses.items():
        licenses.pop(host_id.hex(), None)
        licenses[host_id.hex()] = lic
    while len(licenses) > MAX_CACHED_LICENSES:
        licenses.pop(next(iter(licenses)))
    cached = state.cached_host
    if state.host_caching and outcome.answered and outcome.host is not None:
        cached = outcome.host
    reply, host = outcome.last_reply, outcome.last_host
    last = LastReply(
        at=now,
        host=None if host is None else str(host),
        result=None if reply is None else reply.result.label,
        count=None if reply is None else reply.count,
        required=None if reply is None else reply.required,
        error=outcome.error,
    )
    return replace(
        state,
        machine=m,
        ticket=ticket,
        ticket_license=ticket_license,
        licenses=licenses,
        cached_host=cached,
        last=last,
        load_problem=None,
    )


def mak_activated(state: ClientState, confirmation: bytes, now: int) -> ClientState:
    """Licensed for good by ``confirmation`` (already checked by
    :func:`volact.client.mak.check_response`)."""
    return replace(
        state,
        machine=state.machine.mak_activated(now),
        mak_confirmation=confirmation,
        last=LastReply(at=now, host="authority", result="ok"),
        load_problem=None,
    )


def attempt_failed(state: ClientState, now: int, *, host: str | None, error: str) -> ClientState:
    """An attempt that nobody answered usefully (the authority for a MAK)."""
    return replace(
        state,
        machine=state.machine.failed(now),
        last=LastReply(at=now, host=host, error=error),
    )


@dataclass(frozen=True)
class RevocationUpdate:
    """What offering a revocation list did (:func:`offer_revocations`)."""

    updated: bool  #: the offered list was newer and is now in force
    sequence: int | None  #: the sequence in force afterwards (None: no list at all)
    previous: int | None  #: the sequence in force before
    offered: int | None  #: the sequence of the list offered (None: the authority has none)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_revocation_list(profile: ProductProfile, data: bytes) -> RevocationList:
    """``data`` as a revocation list, if the profile's vendor key verifies it; else
    :class:`~volact.errors.VerificationError`."""
    try:
        return verify_revocation_list(data, profile.vendor_public_key)
    except DecodeError as exc:
        raise VerificationError(f"the revocation list is malformed: {exc}") from exc


def offer_revocations(
    state: ClientState,
    profile: ProductProfile,
    offered: RevocationList | None,
    data: bytes | None,
) -> tuple[ClientState, RevocationUpdate]:
    """Keep ``data`` (``offered``, checked by :func:`check_revocation_list`; None:
    nothing offered) if it is newer than the list in force (the profile's or the
    stored one). An older or equal list changes nothing, so an old list can never
    undo a revocation."""
    current, _ = newest_revocations(profile, state.revocations)
    previous = None if current is None else current.sequence
    if offered is None or data is None:
        return state, RevocationUpdate(False, previous, previous, None)
    if previous is not None and offered.sequence <= previous:
        return state, RevocationUpdate(False, previous, previous, offered.sequence)
    updated = replace(state, revocations=bytes(data))
    return updated, RevocationUpdate(True, offered.sequence, previous, offered.sequence)


__all__ = [
    "MAX_CACHED_LICENSES",
    "MOVED_NOTICE",
    "ClientState",
    "LastReply",
    "RevocationUpdate",
    "apply_outcome",
    "attempt_failed",
    "cached_licenses",
    "check_revocation_list",
    "decode_state",
    "encode_state",
    "install_key",
    "mak_activated",
    "new_state",
    "newest_revocations",
    "offer_revocations",
    "plan_attempt",
    "rearm",
    "resolve_key",
    "reverify",
    "revocation_sequence",
    "same_request",
    "state_from_json",
    "state_to_json",
]
