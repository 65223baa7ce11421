"""A client's state on disk: one checksummed state file, written atomically, and an event log.

Home directory layout::

    profile.json    the product profile copied at ``init`` (the CLI's trust root)
    state.json      "volact-client-state 1 <sha256 of the body>\\n" + JSON body
    events.jsonl    one JSON object a line; rotated to events.jsonl.1 past 1 MiB
    .lock           taken (flock) around every read-modify-write

Writes go to a temporary file in the same directory, are fsynced, then renamed over
the old file (and the directory fsynced): a crash leaves the old state or the new,
never a mix. The checksum line makes any changed byte of the state file detectable
(:class:`~volact.errors.StoreError`). It is not a secret: what stops someone from
*extending* a license by editing the file is that validity is never read from the
JSON but from the stored ticket (or MAK confirmation), re-verified against the
vendor key on every load; a ticket that no longer verifies is dropped with a reason.
The state also keeps the newest vendor-signed revocation list the client has seen
(re-verified on load too) and a fingerprint of the machine the home belongs to
(a salted hash; the machine's own id is never written). This module does file I/O
only; it takes ``now`` from its caller.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from volact.client.machine import Machine, implausible_validity
from volact.client.srv import HostAddress
from volact.documents import (
    ActivationTicket,
    RevocationList,
    verify_host_license,
    verify_mak_confirmation,
    verify_revocation_list,
    verify_ticket,
)
from volact.errors import ConfigurationError, DecodeError, StoreError, VerificationError
from volact.files import write_atomic
from volact.keys import KeyKind, ProductKey
from volact.profile import ProductProfile

STATE_FORMAT = "volact-client-state"
STATE_VERSION = 1
STATE_FILE = "state.json"
PROFILE_FILE = "profile.json"
EVENTS_FILE = "events.jsonl"
LOCK_FILE = ".lock"
#: The event log is rotated (one old generation kept) past this size.
EVENTS_MAX_BYTES = 1 << 20
#: Host licenses kept in the cache (oldest dropped first).
MAX_CACHED_LICENSES = 64


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
    #: salted hash of the machine this home was made on (see ``api.machine_fingerprint``)
    machine_fingerprint: str | None = None
    load_problem: str | None = None  #: why a stored ticket was dropped when loading

    @property
    def product_key(self) -> ProductKey | None:
        return None if self.key is None else ProductKey.parse(self.key)


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


def encode_state(state: ClientState) -> bytes:
    body = json.dumps(state_to_json(state), indent=2, sort_keys=True).encode() + b"\n"
    digest = hashlib.sha256(body).hexdigest()
    return f"{STATE_FORMAT} {STATE_VERSION} {digest}\n".encode() + body


def decode_state(data: bytes) -> ClientState:
    """Parse a state file; any changed byte raises :class:`StoreError`."""
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


class ClientStore:
    """The files of one client home."""

    def __init__(self, home: Path | str) -> None:
        self.home = Path(home)

    @property
    def state_path(self) -> Path:
        return self.home / STATE_FILE

    @property
    def profile_path(self) -> Path:
        return self.home / PROFILE_FILE

    @property
    def events_path(self) -> Path:
        return self.home / EVENTS_FILE

    def exists(self) -> bool:
        return self.state_path.exists()

    def create_home(self) -> None:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot create {self.home}: {exc.strerror}") from exc

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the home's lock (other processes using this home wait)."""
        try:
            fd = os.open(self.home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            raise ConfigurationError(
                f"{self.home} is not a client home: run `volact client init --home {self.home}`"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot open the lock in {self.home}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read_raw(self) -> ClientState:
        try:
            data = self.state_path.read_bytes()
        except FileNotFoundError:
            raise ConfigurationError(
                f"{self.home} is not a client home: run `volact client init --home {self.home}`"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot read {self.state_path}: {exc.strerror}") from exc
        return decode_state(data)

    def load(self, profile: ProductProfile) -> ClientState:
        """The state, checked byte for byte and re-verified against ``profile``."""
        return reverify(self.read_raw(), profile)

    def save(self, state: ClientState) -> None:
        write_atomic(self.state_path, encode_state(state), error=StoreError)

    def load_profile(self) -> ProductProfile:
        try:
            data = self.profile_path.read_bytes()
        except FileNotFoundError:
            raise ConfigurationError(
                f"{self.home} has no product profile: run `volact client init --home "
                f"{self.home} --profile FILE`"
            ) from None
        except OSError as exc:
            raise ConfigurationError(f"cannot read {self.profile_path}: {exc.strerror}") from exc
        return ProductProfile.loads(data)

    def save_profile(self, profile: ProductProfile) -> None:
        write_atomic(self.profile_path, profile.dumps(), error=StoreError)

    def append_event(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, sort_keys=True, default=str) + "\n"
        try:
            with contextlib.suppress(FileNotFoundError):
                if self.events_path.stat().st_size > EVENTS_MAX_BYTES:
                    os.replace(self.events_path, self.events_path.with_name(EVENTS_FILE + ".1"))
            with open(self.events_path, "a", encoding="utf-8") as f:
                f.write(line)
        except OSError as exc:
            raise StoreError(f"cannot append to {self.events_path}: {exc.strerror}") from exc

    def events(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Logged events, oldest first (the rotated generation included)."""
        out: list[dict[str, Any]] = []
        for path in (self.events_path.with_name(EVENTS_FILE + ".1"), self.events_path):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
            for line in text.splitlines():
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue  # a torn last line after a crash
                if isinstance(obj, dict):
                    out.append(obj)
        return out if limit is None else out[-limit:]
