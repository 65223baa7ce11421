"""The embedding API: what a vendor's product calls to keep its machine licensed.

::

    from volact import Activation, ProductProfile

    act = Activation(ProductProfile.loads(profile_text), "/var/lib/myproduct/license",
                     sku="Acme Desktop 2026 Professional")
    status = act.activate()          # find a host, activate, store the ticket
    if not status.activated: ...     # status.state, status.last_error say why
    schedule = act.start_background(on_step=print)   # renew and retry for good
    ...
    schedule.stop()

:class:`Activation` wires the sans-I/O parts (:mod:`~volact.client.machine`,
:mod:`~volact.client.planner`) to the adapters (:mod:`~volact.client.transport`,
:mod:`~volact.client.discovery`, :mod:`~volact.client.store`,
:mod:`~volact.client.mak`). Every source of time, randomness and network is a
constructor argument, so tests run with a hand-moved clock and no sockets. No
licensing policy lives here: it only applies what the machine and planner decide.

A home records a fingerprint of the machine it was made on (:func:`machine_fingerprint`
of :func:`read_machine_id`, both replaceable). A home found on another machine (a
copied directory, one home shared by many machines) is re-armed on load: a new
CMID, no activation, grace from now, so one activation never serves two machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from volact.client import discovery, mak, revocations, transport
from volact.client.machine import Machine
from volact.client.planner import (
    DEFAULT_ATTEMPT_SECONDS,
    DEFAULT_EXCHANGE_SECONDS,
    AttemptPlanner,
    DiscoveryConfig,
    Outcome,
    Verifier,
    request_for,
    run_async,
    run_sync,
)
from volact.client.srv import HostAddress, SrvRecord, valid_host_name
from volact.client.store import (
    MAX_CACHED_LICENSES,
    ClientState,
    ClientStore,
    LastReply,
    newest_revocations,
)
from volact.documents import verify_revocation_list
from volact.errors import (
    ConfigurationError,
    DecodeError,
    TransportError,
    UsageError,
    VerificationError,
    VolactError,
)
from volact.exchanges import MakRequest, MakResponse
from volact.keys import KeyKind, ProductKey
from volact.profile import ProductProfile
from volact.wire import DEFAULT_ACTIVATION_INTERVAL, MINUTE, LicenseState

Clock = Callable[[], float]
SyncLookup = Callable[[str, float], Sequence[SrvRecord]]
SyncExchange = Callable[[HostAddress, bytes, float], bytes]
AsyncLookup = Callable[[str, float], Awaitable[Sequence[SrvRecord]]]
AsyncExchange = Callable[[HostAddress, bytes, float], Awaitable[bytes]]

#: The longest a background schedule sleeps before looking again (seconds).
MAX_SLEEP_SECONDS = 3600.0

#: Where the machine's identity is read, in order; the host name is the last resort.
MACHINE_ID_PATHS = (
    "/etc/machine-id",
    "/var/lib/dbus/machine-id",
    "/sys/class/dmi/id/product_uuid",
)
_FINGERPRINT_SALT = b"volact-machine"
#: What ``status().last_error`` says after a home was found on another machine.
MOVED_NOTICE = (
    "home moved to another machine: re-armed (new CMID, activation dropped, grace "
    "restarted); activate again"
)


def read_machine_id(
    paths: Sequence[str | Path] = MACHINE_ID_PATHS,
    hostname: Callable[[], str] = socket.gethostname,
) -> str:
    """This machine's identity: the first readable, non-empty id of ``paths``
    (systemd's machine id, D-Bus's, the DMI product UUID), else the host name."""
    for path in paths:
        try:
            text = Path(path).read_text(errors="replace").strip()
        except OSError:
            continue
        if text and text.lower() != "uninitialized":
            return text
    return hostname()


def machine_fingerprint(machine_id: str) -> str:
    """A salted SHA-256 of the machine id: what a home stores (never the id itself)."""
    return hashlib.sha256(_FINGERPRINT_SALT + b"\x00" + machine_id.encode()).hexdigest()


_VM_MARKERS = (
    "kvm",
    "qemu",
    "vmware",
    "virtualbox",
    "xen",
    "bochs",
    "hyper-v",
    "virtual machine",
    "bhyve",
    "parallels",
    "openstack",
    "google compute engine",
    "amazon ec2",
    "cloud hypervisor",
    "firecracker",
)


def detect_vm() -> bool:
    """Best effort: does this machine look virtual (DMI names, the CPU hypervisor flag)?"""
    for path in ("/sys/class/dmi/id/product_name", "/sys/class/dmi/id/sys_vendor"):
        try:
            text = Path(path).read_text(errors="replace").strip().lower()
        except OSError:
            continue
        if any(marker in text for marker in _VM_MARKERS):
            return True
    try:
        with open("/proc/cpuinfo", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return " hypervisor" in line
    except OSError:
        pass
    return False


def iso(t: int | None) -> str | None:
    """Unix seconds as ISO 8601 UTC (``2026-05-01T12:00:00Z``), or None."""
    if t is None:
        return None
    try:
        return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class Status:
    """A machine's license, as a product or an administrator sees it."""

    now: int  #: when this status was taken (Unix seconds)
    state: str  #: ``unlicensed``, ``grace``, ``licensed`` or ``notification``
    activated: bool  #: the machine is licensed right now
    permanent: bool  #: activated by a MAK (never expires)
    cmid: str  #: client machine id
    sku: str | None  #: installed SKU id
    sku_name: str | None  #: its name
    key: str | None  #: the installed key, all but its last group masked
    key_kind: str | None  #: ``gvlk`` or ``mak``
    host: str | None  #: the host that answered last
    count: int | None  #: that host's count in its last reply
    required_count: int | None  #: the count the SKU's group requires
    result: str | None  #: the last result code by name (``ok``, ``count_too_low``...)
    activation_interval: int  #: minutes between retries
    renewal_interval: int  #: minutes between renewals
    valid_until: int | None  #: end of the current activation (None if none or permanent)
    grace_until: int | None  #: end of the initial grace (None with no key)
    next_action_at: int | None  #: when the next attempt is due (None: nothing to do)
    last_attempt_at: int | None  #: when the last attempt ended
    last_error: str | None  #: why the last attempt (or loading the state) failed
    manual_host: str | None  #: set-host
    domain: str | None  #: set-domain
    host_caching: bool  #: host-caching on|off
    cached_host: str | None  #: the host an attempt goes to first
    vm: bool  #: reported to hosts as a virtual machine
    revocation_sequence: int | None = None  #: the revocation list in force (None: none)

    def to_json(self) -> dict[str, Any]:
        """The object ``volact client status --json`` prints (times in ISO 8601)."""
        obj: dict[str, Any] = dict(self.__dict__)
        for name in ("now", "valid_until", "grace_until", "next_action_at", "last_attempt_at"):
            obj[name] = iso(obj[name])
        return obj


def _revocation_sequence(state: ClientState, profile: ProductProfile) -> int | None:
    try:
        rl, _ = newest_revocations(profile, state.revocations)
    except VerificationError:
        return None
    return None if rl is None else rl.sequence


def _status(state: ClientState, profile: ProductProfile, now: int) -> Status:
    m = state.machine
    sku = None if m.sku is None else profile.catalog.find_sku(m.sku)
    key = state.product_key
    last = state.last
    error = state.load_problem or (last.error if last else None)
    return Status(
        now=now,
        state=m.state(now).name.lower(),
        activated=m.activated(now),
        permanent=m.permanent,
        cmid=str(state.cmid),
        sku=None if m.sku is None else str(m.sku),
        sku_name=None if sku is None else sku.name,
        key=None if key is None else key.masked,
        key_kind=None if m.key_kind is None else m.key_kind.label,
        host=None if last is None else last.host,
        count=None if last is None else last.count,
        required_count=None if last is None else last.required,
        result=None if last is None else last.result,
        activation_interval=m.activation_interval,
        renewal_interval=m.renewal_interval,
        valid_until=None if m.permanent else m.valid_until,
        grace_until=m.grace_end(now),
        next_action_at=m.next_action_at(now),
        last_attempt_at=m.last_attempt_at,
        last_error=error,
        manual_host=None if state.manual_host is None else str(state.manual_host),
        domain=state.domain,
        host_caching=state.host_caching,
        cached_host=None if state.cached_host is None else str(state.cached_host),
        vm=state.vm,
        revocation_sequence=_revocation_sequence(state, profile),
    )


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


def init_home(
    profile: ProductProfile,
    home: Path | str,
    *,
    sku: str | None = None,
    vm: bool | None = None,
    workstation: str | None = None,
    now: int,
    force: bool = False,
    machine_id: Callable[[], str] = read_machine_id,
) -> ClientState:
    """Create a client home: a new random CMID and, with ``sku``, that SKU's GVLK.

    The home records :func:`machine_fingerprint` of ``machine_id()``."""
    store = ClientStore(home)
    if store.exists() and not force:
        raise UsageError(
            f"{store.home} is already a client home (use --force to start again; "
            "this forgets its activation)"
        )
    store.create_home()
    machine = Machine()
    key_text: str | None = None
    if sku is not None:
        chosen = profile.catalog.sku(sku)
        if chosen.id not in profile.gvlks:
            raise ConfigurationError(f"the profile has no setup key (GVLK) for {chosen.name}")
        key_text = profile.gvlk(chosen).text
        machine = machine.install(now, chosen.id, KeyKind.GVLK)
    name = workstation if workstation is not None else socket.gethostname()
    state = ClientState(
        vendor_key_id=profile.vendor_key_id,
        cmid=uuid.uuid4(),
        created_at=now,
        machine=machine,
        key=key_text,
        vm=detect_vm() if vm is None else vm,
        workstation=name.encode("utf-8")[:63].decode("utf-8", "ignore"),
        machine_fingerprint=machine_fingerprint(machine_id()),
    )
    with store.locked():
        store.save_profile(profile)
        store.save(state)
        store.append_event(
            {"time": iso(now), "t": now, "event": "initialised", "cmid": str(state.cmid)}
        )
    return state


class Activation:
    """One machine's license for one product: status, activation, and its schedule."""

    def __init__(
        self,
        profile: ProductProfile,
        home: Path | str,
        *,
        sku: str | None = None,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
        rng: random.Random | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        nameservers: Sequence[HostAddress] | None = None,
        search_domains: Callable[[], Sequence[str]] | None = None,
        lookup_srv: SyncLookup | None = None,
        exchange: SyncExchange | None = None,
        lookup_srv_async: AsyncLookup | None = None,
        exchange_async: AsyncExchange | None = None,
        authority_url: str | None = None,
        post_mak: Callable[[str, MakRequest], MakResponse] | None = None,
        attempt_seconds: float = DEFAULT_ATTEMPT_SECONDS,
        exchange_seconds: float = DEFAULT_EXCHANGE_SECONDS,
        vm: bool | None = None,
        workstation: str | None = None,
        machine_id: Callable[[], str] = read_machine_id,
        get_revocations: Callable[[str], revocations.RevocationsAnswer] | None = None,
    ) -> None:
        """Open ``home`` (creating it, with ``sku``'s setup key, if it does not exist).

        Everything after ``sku`` is optional: the defaults are the real clock, the
        real network, the machine's DNS configuration and its machine id.
        """
        self.profile = profile
        self.store = ClientStore(home)
        self._clock = clock
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._random_bytes = random_bytes
        self._nameservers = None if nameservers is None else list(nameservers)
        self._search_domains = search_domains or discovery.search_domains
        ns = self._nameservers
        self._lookup: SyncLookup = lookup_srv or (
            lambda name, t: discovery.lookup_srv(name, nameservers=ns, timeout=t)
        )
        self._exchange: SyncExchange = exchange or (
            lambda a, f, t: transport.exchange(a, f, t, nameservers=ns)
        )
        self._lookup_async: AsyncLookup = lookup_srv_async or (
            lambda name, t: discovery.lookup_srv_async(name, nameservers=ns, timeout=t)
        )
        self._exchange_async: AsyncExchange = exchange_async or (
            lambda a, f, t: transport.exchange_async(a, f, t, nameservers=ns)
        )
        self._authority_url = authority_url
        self._post_mak = post_mak or (lambda url, req: mak.post_mak(url, req))
        self._attempt_seconds = attempt_seconds
        self._exchange_seconds = exchange_seconds
        self._machine_id = machine_id
        self._fingerprint: str | None = None
        self._get_revocations = get_revocations or (lambda url: revocations.fetch_revocations(url))
        if not self.store.exists():
            init_home(
                profile,
                home,
                sku=sku,
                vm=vm,
                workstation=workstation,
                now=self.now(),
                machine_id=machine_id,
            )

    def now(self) -> int:
        return int(self._clock())

    # ---- reading -------------------------------------------------------------------

    def load(self) -> ClientState:
        """The stored state, checked and re-verified (see :mod:`volact.client.store`).

        A home found on another machine than the one it was made on is re-armed
        (and that is saved and logged) before it is returned.
        """
        state = self.store.load(self.profile)
        if self._moved(state):
            with self.store.locked():
                return self._load_locked()
        return state

    def _load_locked(self) -> ClientState:
        """:meth:`load`, for a caller that holds the home's lock (and saves after)."""
        state = self.store.load(self.profile)
        if state.machine_fingerprint is None:  # a home from before fingerprints: adopt
            return replace(state, machine_fingerprint=self._current_fingerprint())
        if self._moved(state):
            state = self._rearmed_for_this_machine(state)
            self.store.save(state)
            self._log([{"event": "home_moved", "reason": MOVED_NOTICE, "cmid": str(state.cmid)}])
        return state

    def _current_fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = machine_fingerprint(self._machine_id())
        return self._fingerprint

    def _moved(self, state: ClientState) -> bool:
        return (
            state.machine_fingerprint is not None
            and state.machine_fingerprint != self._current_fingerprint()
        )

    def _rearmed_for_this_machine(self, state: ClientState) -> ClientState:
        now = self.now()
        return replace(
            state,
            cmid=uuid.uuid4(),
            machine=state.machine.rearm(now),
            ticket=None,
            ticket_license=None,
            mak_confirmation=None,
            cached_host=None,
            last=LastReply(at=now, error=MOVED_NOTICE),
            load_problem=None,
            machine_fingerprint=self._current_fingerprint(),
        )

    def status(self) -> Status:
        """Where the license stands now (no network)."""
        return _status(self.load(), self.profile, self.now())

    async def status_async(self) -> Status:
        return self.status()  # a local file read; nothing to wait for

    def events(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self.store.events(limit)

    # ---- settings ------------------------------------------------------------------

    def _update(
        self, change: Callable[[ClientState], ClientState], event: dict[str, Any]
    ) -> Status:
        with self.store.locked():
            loaded = self._load_locked()
            state = change(loaded)
            self.store.save(state)
            self._log([*_problem_events(loaded), event])
        return _status(state, self.profile, self.now())

    def install_key(self, key: str, *, sku: str | None = None) -> Status:
        """Install a GVLK (host activation) or a MAK (authority activation)."""
        parsed, sku_id = resolve_key(self.profile, key, sku)
        now = self.now()

        def change(s: ClientState) -> ClientState:
            machine = s.machine.install(now, sku_id, parsed.kind)
            if machine is s.machine:
                return s
            return replace(
                s,
                machine=machine,
                key=parsed.text,
                ticket=None,
                ticket_license=None,
                mak_confirmation=None,
                load_problem=None,
            )

        return self._update(
            change,
            {
                "event": "key_installed",
                "key": parsed.masked,
                "kind": parsed.kind.label,
                "sku": str(sku_id),
            },
        )

    def set_host(self, host: str | HostAddress) -> Status:
        """Always use this host (``HOST[:PORT]``, ``[V6]:PORT``); it wins over DNS."""
        addr = host if isinstance(host, HostAddress) else HostAddress.parse(host)
        return self._update(
            lambda s: replace(s, manual_host=addr), {"event": "host_set", "host": str(addr)}
        )

    def clear_host(self) -> Status:
        return self._update(lambda s: replace(s, manual_host=None), {"event": "host_cleared"})

    def set_domain(self, domain: str | None) -> Status:
        """Look for SRV records in ``domain`` (None: the machine's search domains)."""
        d = None if domain is None else domain.strip().strip(".")
        if d is not None and not d:
            raise UsageError("an empty domain: give a DNS domain such as corp.example")
        if d is not None and not valid_host_name(d):
            raise UsageError(f"{domain!r} is not a DNS domain (e.g. corp.example)")
        return self._update(lambda s: replace(s, domain=d), {"event": "domain_set", "domain": d})

    def set_host_caching(self, on: bool) -> Status:
        return self._update(
            lambda s: replace(s, host_caching=on, cached_host=s.cached_host if on else None),
            {"event": "host_caching", "on": on},
        )

    def set_vm(self, vm: bool) -> Status:
        return self._update(lambda s: replace(s, vm=vm), {"event": "vm_set", "vm": vm})

    def rearm(self) -> Status:
        """A new CMID for a machine made from an image: activation dropped, grace restarts."""
        now = self.now()

        def change(s: ClientState) -> ClientState:
            return replace(
                s,
                cmid=uuid.uuid4(),
                machine=s.machine.rearm(now),
                ticket=None,
                ticket_license=None,
                mak_confirmation=None,
                cached_host=None,
                last=None,
                load_problem=None,
            )

        return self._update(change, {"event": "rearmed"})

    # ---- activating ----------------------------------------------------------------

    def _prepare(self) -> tuple[ClientState, AttemptPlanner, int]:
        state = self.load()
        m = state.machine
        if m.sku is None:
            raise UsageError(
                "no product key is installed: run `volact client install-key` (or init with --sku)"
            )
        now = self.now()
        req = request_for(
            sku=m.sku,
            cmid=state.cmid,
            nonce=self._random_bytes(16),
            now=now,
            state=m.state(now),
            minutes_left=m.minutes_left(now),
            vm=state.vm,
            workstation=state.workstation,
        )
        config = DiscoveryConfig(
            label=self.profile.dns_label,
            manual_host=state.manual_host,
            domain=state.domain,
            search_domains=()
            if state.domain or state.manual_host
            else tuple(self._search_domains()),
            caching=state.host_caching,
            cached_host=state.cached_host,
        )
        planner = AttemptPlanner(
            request=req,
            verifier=Verifier(
                self.profile.vendor_public_key,
                self.profile.catalog,
                newest_revocations(self.profile, state.revocations)[0],
            ),
            config=config,
            licenses={bytes.fromhex(k): v for k, v in state.licenses.items()},
            rng=self._rng,
            started=self._monotonic(),
            time_limit=self._attempt_seconds,
            exchange_timeout=self._exchange_seconds,
        )
        return state, planner, now

    def _commit(self, before: ClientState, outcome: Outcome) -> Status:
        now = self.now()
        with self.store.locked():
            state = self._load_locked()
            if (
                state.cmid != before.cmid
                or state.machine.sku != before.machine.sku
                or state.machine.key_kind is not before.machine.key_kind
            ):
                # Rearmed or re-keyed meanwhile: this outcome answers a request nobody holds.
                self._log([{"event": "outcome_discarded", "reason": "state changed meanwhile"}])
                return _status(state, self.profile, now)
            problems = _problem_events(state)
            state = apply_outcome(state, outcome, now)
            self.store.save(state)
            self._log([*problems, *outcome.events])
        return _status(state, self.profile, now)

    def activate(self) -> Status:
        """Activate (or renew) now: find a host, ask it, verify and store its answer."""
        if self._is_mak():
            return self._activate_mak()
        state, planner, _ = self._prepare()
        outcome = run_sync(
            planner, lookup_srv=self._lookup, exchange=self._exchange, monotonic=self._monotonic
        )
        return self._commit(state, outcome)

    async def activate_async(self) -> Status:
        """The asyncio twin of :meth:`activate`."""
        if self._is_mak():
            return await asyncio.to_thread(self._activate_mak)
        state, planner, _ = self._prepare()
        outcome = await run_async(
            planner,
            lookup_srv=self._lookup_async,
            exchange=self._exchange_async,
            monotonic=self._monotonic,
        )
        return self._commit(state, outcome)

    def tick(self) -> tuple[Status, bool]:
        """Act if an attempt is due (or the clock was set back past the last one);
        (status, whether it acted)."""
        status = self.status()
        if status.next_action_at is not None and status.now >= status.next_action_at:
            return self.activate(), True
        return status, False

    async def tick_async(self) -> tuple[Status, bool]:
        status = self.status()
        if status.next_action_at is not None and status.now >= status.next_action_at:
            return await self.activate_async(), True
        return status, False

    # ---- MAK -----------------------------------------------------------------------

    def _is_mak(self) -> bool:
        return self.load().machine.key_kind is KeyKind.MAK

    def mak_request(self) -> MakRequest:
        """The request file for offline (or proxy) MAK activation."""
        return mak.build_request(self.load())

    def mak_apply(self, response: MakResponse) -> Status:
        """Apply the authority's answer; a refusal or a forged confirmation changes nothing."""
        now = self.now()
        with self.store.locked():
            state = self._load_locked()
            confirmation = mak.check_response(state, self.profile, response)
            state = replace(
                state,
                machine=state.machine.mak_activated(now),
                mak_confirmation=confirmation,
                last=LastReply(at=now, host="authority", result="ok"),
                load_problem=None,
            )
            self.store.save(state)
            self._log([{"event": "mak_activated", "cmid": str(state.cmid)}])
        return _status(state, self.profile, now)

    def _activate_mak(self) -> Status:
        state = self.load()
        if state.machine.permanent:
            return _status(state, self.profile, self.now())
        url = self._authority_url or self.profile.authority_url
        if not url:
            raise ConfigurationError(
                "no authority URL to activate this MAK online: give --authority URL, or use "
                "`volact client mak-request` and `mak-apply` to activate offline"
            )
        request = mak.build_request(state)
        self._log([{"event": "mak_request_sent", "authority": url, "cmid": str(state.cmid)}])
        try:
            return self.mak_apply(self._post_mak(url, request))
        except (TransportError, VerificationError) as exc:
            now = self.now()
            with self.store.locked():
                s = self._load_locked()
                s = replace(
                    s,
                    machine=s.machine.failed(now),
                    last=LastReply(at=now, host="authority", error=str(exc)),
                )
                self.store.save(s)
                self._log([{"event": "mak_failed", "reason": str(exc)}])
            return _status(s, self.profile, now)

    # ---- revocations ---------------------------------------------------------------

    def apply_revocations(self, data: bytes) -> RevocationUpdate:
        """Keep ``data`` (a vendor-signed revocation list) if it verifies and is newer
        than the list in force (the profile's or the stored one). An older or equal
        list changes nothing; one that does not verify raises
        :class:`~volact.errors.VerificationError` and changes nothing.

        Stored tickets from hosts the new list revokes are dropped on the next load.
        """
        try:
            offered = verify_revocation_list(data, self.profile.vendor_public_key)
        except DecodeError as exc:
            raise VerificationError(f"the revocation list is malformed: {exc}") from exc
        with self.store.locked():
            state = self._load_locked()
            current, _ = newest_revocations(self.profile, state.revocations)
            previous = None if current is None else current.sequence
            updated = previous is None or offered.sequence > previous
            if updated:
                state = replace(state, revocations=bytes(data))
                self.store.save(state)
            self._log(
                [
                    {
                        "event": "revocations_updated" if updated else "revocations_unchanged",
                        "sequence": offered.sequence,
                        "previous": previous,
                    }
                ]
            )
        return RevocationUpdate(
            updated=updated,
            sequence=offered.sequence if updated else previous,
            previous=previous,
            offered=offered.sequence,
        )

    def refresh_revocations(self, authority_url: str | None = None) -> RevocationUpdate:
        """Fetch the authority's revocation list and keep it if it is newer (see
        :meth:`apply_revocations`)."""
        url = authority_url or self._authority_url or self.profile.authority_url
        if not url:
            raise ConfigurationError(
                "no authority URL to fetch revocations from: give --authority URL "
                "(or an authority_url in the product profile)"
            )
        answer = self._get_revocations(url)
        if answer.revocation_list is None:
            state = self.load()
            current, _ = newest_revocations(self.profile, state.revocations)
            seq = None if current is None else current.sequence
            self._log([{"event": "revocations_unchanged", "sequence": None, "previous": seq}])
            return RevocationUpdate(updated=False, sequence=seq, previous=seq, offered=None)
        return self.apply_revocations(answer.revocation_list)

    # ---- the schedule --------------------------------------------------------------

    def run_schedule(
        self,
        *,
        stop: threading.Event | None = None,
        on_step: Callable[[Status, bool], None] | None = None,
        max_steps: int | None = None,
        sleep: Callable[[float], bool] | None = None,
        max_sleep: float = MAX_SLEEP_SECONDS,
    ) -> Status:
        """Keep the license: act when due, sleep until the next action or state change.

        Returns when ``stop`` is set or after ``max_steps`` steps. ``sleep(seconds)``
        returns True to stop (default: ``stop.wait``); tests pass one that moves a
        fake clock instead. Sleeps last at most ``max_sleep`` seconds, so that a
        change of the system clock is noticed within that time.

        A step that raises a :class:`~volact.errors.VolactError` (a damaged state
        file, an unreadable home, a refused document, a missing authority URL...)
        does not end the schedule: the error is logged (``schedule_error``) and the
        next step comes one activation interval later (at most ``max_sleep``), so
        that an administrator can repair the home while the product runs.
        ``on_step`` is called only with a status that could be read.
        """
        stop = stop or threading.Event()
        wait = sleep or stop.wait
        steps = 0
        status: Status | None = None
        while not stop.is_set() and (max_steps is None or steps < max_steps):
            failed = False
            try:
                status, acted = self.tick()
            except VolactError as exc:
                self._schedule_error(exc)
                failed, acted = True, False
            steps += 1
            if on_step is not None and status is not None:
                on_step(status, acted)
            if max_steps is not None and steps >= max_steps:
                break
            if wait(self._backoff(status, max_sleep) if failed else self._sleep_for(max_sleep)):
                break
        return status if status is not None else self.status()

    async def run_schedule_async(
        self,
        *,
        stop: asyncio.Event | None = None,
        on_step: Callable[[Status, bool], None] | None = None,
        max_steps: int | None = None,
        max_sleep: float = MAX_SLEEP_SECONDS,
    ) -> Status:
        """The asyncio twin of :meth:`run_schedule` (cancel the task, or set ``stop``)."""
        stop = stop or asyncio.Event()
        steps = 0
        status: Status | None = None
        while not stop.is_set() and (max_steps is None or steps < max_steps):
            failed = False
            try:
                status, acted = await self.tick_async()
            except VolactError as exc:
                self._schedule_error(exc)
                failed, acted = True, False
            steps += 1
            if on_step is not None and status is not None:
                on_step(status, acted)
            if max_steps is not None and steps >= max_steps:
                break
            pause = self._backoff(status, max_sleep) if failed else self._sleep_for(max_sleep)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
        return status if status is not None else self.status()

    def start_background(
        self, *, on_step: Callable[[Status, bool], None] | None = None
    ) -> BackgroundSchedule:
        """Run :meth:`run_schedule` in a daemon thread; stop it with ``.stop()``."""
        return BackgroundSchedule(self, on_step)

    def _schedule_error(self, exc: VolactError) -> None:
        # The log may be what fails (a full disk): the schedule goes on regardless.
        with contextlib.suppress(VolactError):
            self._log(
                [{"event": "schedule_error", "error": exc.__class__.__name__, "reason": str(exc)}]
            )

    @staticmethod
    def _backoff(status: Status | None, max_sleep: float) -> float:
        """The pause after a failed step: the activation interval, at most ``max_sleep``."""
        minutes = status.activation_interval if status is not None else DEFAULT_ACTIVATION_INTERVAL
        return float(max(1.0, min(max_sleep, minutes * MINUTE)))

    def _sleep_for(self, max_sleep: float) -> float:
        now = self.now()
        wake = self.load().machine.wake_at(now)
        if wake is None:
            return max_sleep
        return float(max(1, min(max_sleep, wake - now)))

    # ---- log -----------------------------------------------------------------------

    def _log(self, events: list[dict[str, Any]]) -> None:
        now = self.now()
        for e in events:
            self.store.append_event({"time": iso(now), "t": now, **e})


@dataclass(frozen=True)
class RevocationUpdate:
    """What :meth:`Activation.refresh_revocations` did."""

    updated: bool  #: the offered list was newer and is now in force
    sequence: int | None  #: the sequence in force afterwards (None: no list at all)
    previous: int | None  #: the sequence in force before
    offered: int | None  #: the sequence of the list offered (None: the authority has none)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class BackgroundSchedule:
    """A thread that keeps an :class:`Activation`'s schedule until stopped."""

    def __init__(self, activation: Activation, on_step: Callable[[Status, bool], None] | None):
        self._stop = threading.Event()
        self.last_status: Status | None = None
        self.error: BaseException | None = None

        def step(status: Status, acted: bool) -> None:
            self.last_status = status
            if on_step is not None:
                on_step(status, acted)

        def run() -> None:
            try:
                activation.run_schedule(stop=self._stop, on_step=step)
            except BaseException as exc:  # kept for the application to inspect
                self.error = exc

        self._thread = threading.Thread(target=run, name="volact-schedule", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


def _problem_events(state: ClientState) -> list[dict[str, Any]]:
    """An event for a stored document that failed re-verification (it is about to go)."""
    if state.load_problem is None:
        return []
    return [{"event": "stored_state_refused", "reason": state.load_problem}]


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
        m = m.succeeded(
            now,
            valid_until=valid_until,
            activation_interval=t.activation_interval,
            renewal_interval=t.renewal_interval,
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


__all__ = [
    "Activation",
    "BackgroundSchedule",
    "LicenseState",
    "RevocationUpdate",
    "Status",
    "apply_outcome",
    "detect_vm",
    "init_home",
    "machine_fingerprint",
    "read_machine_id",
    "resolve_key",
]
