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

:class:`Activation` is a thin shell: it loads the state under the home's lock
(:mod:`~volact.client.store`), applies a transition of :mod:`~volact.client.state`
(with ``now`` from its clock), saves and logs. An attempt is planned by
:mod:`~volact.client.planner` and driven over :mod:`~volact.client.transport` and
:mod:`~volact.client.discovery` (or :mod:`~volact.client.mak` for a MAK); the loop
that keeps the license over time is :mod:`~volact.client.schedule`. Every source of
time, randomness, identity and network is a constructor argument, so tests run with
a hand-moved clock and no sockets. No licensing policy lives here.

A home records a fingerprint of the machine it was made on
(:mod:`~volact.client.identity`). A home found on another machine is re-armed on
load (:func:`~volact.client.state.rearm` with
:data:`~volact.client.state.MOVED_NOTICE`), so one activation never serves two
machines.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from volact.client import mak, schedule, state
from volact.client.identity import detect_vm, host_name, machine_fingerprint, read_machine_id
from volact.client.planner import (
    DEFAULT_ATTEMPT_SECONDS,
    DEFAULT_EXCHANGE_SECONDS,
    AttemptPlanner,
    Outcome,
    run_async,
    run_sync,
)
from volact.client.schedule import MAX_SLEEP_SECONDS, BackgroundSchedule
from volact.client.srv import HostAddress, SrvRecord, valid_host_name
from volact.client.state import ClientState, RevocationUpdate
from volact.client.store import ClientStore
from volact.errors import ConfigurationError, TransportError, UsageError, VerificationError
from volact.exchanges import MakRequest, MakResponse
from volact.keys import KeyKind
from volact.profile import ProductProfile
from volact.wire import LicenseState

if TYPE_CHECKING:
    import asyncio  # imported where a coroutine runs: `client status` need not pay for it

    from volact.client.revocations import RevocationsAnswer

Clock = Callable[[], float]
SyncLookup = Callable[[str, float], Sequence[SrvRecord]]
SyncExchange = Callable[[HostAddress, bytes, float], bytes]
AsyncLookup = Callable[[str, float], Awaitable[Sequence[SrvRecord]]]
AsyncExchange = Callable[[HostAddress, bytes, float], Awaitable[bytes]]


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
    #: the host whose (signed) grant asked this machine to move to another host: the
    #: next attempt re-discovers and tries the others first (None: not moving)
    moving_from: str | None = None

    @classmethod
    def of(cls, s: ClientState, profile: ProductProfile, now: int) -> Status:
        """What ``s`` looks like at ``now`` (no I/O)."""
        m = s.machine
        sku = None if m.sku is None else profile.catalog.find_sku(m.sku)
        key = s.product_key
        last = s.last
        return cls(
            now=now,
            state=m.state(now).name.lower(),
            activated=m.activated(now),
            permanent=m.permanent,
            cmid=str(s.cmid),
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
            last_error=s.load_problem or (last.error if last else None),
            manual_host=None if s.manual_host is None else str(s.manual_host),
            domain=s.domain,
            host_caching=s.host_caching,
            cached_host=None if s.cached_host is None else str(s.cached_host),
            vm=s.vm,
            revocation_sequence=state.revocation_sequence(s, profile),
            moving_from=m.moving_from,
        )

    def to_json(self) -> dict[str, Any]:
        """The object ``volact client status --json`` prints (times in ISO 8601)."""
        obj: dict[str, Any] = dict(self.__dict__)
        for name in ("now", "valid_until", "grace_until", "next_action_at", "last_attempt_at"):
            obj[name] = iso(obj[name])
        return obj


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

    Everything is checked before anything is written: a refused SKU or a failed
    write leaves no folder behind. The home records
    :func:`~volact.client.identity.machine_fingerprint` of ``machine_id()``."""
    store = ClientStore(home)
    if store.exists() and not force:
        raise UsageError(
            f"{store.home} is already a client home (use --force to start again; "
            "this forgets its activation)"
        )
    new = state.new_state(
        profile,
        cmid=uuid.uuid4(),
        now=now,
        sku=sku,
        vm=detect_vm() if vm is None else vm,
        workstation=workstation if workstation is not None else host_name(),
        machine_fingerprint=machine_fingerprint(machine_id()),
    )
    created = store.create_home()
    try:
        with store.locked():
            store.save_profile(profile)
            store.save(new)
            store.append_event(
                {"time": iso(now), "t": now, "event": "initialised", "cmid": str(new.cmid)}
            )
    except BaseException:
        store.remove_created(created)  # a failed init leaves nothing behind
        raise
    return new


class _Network:
    """The real network, the default of every :class:`Activation` I/O argument. Its
    libraries (dnspython, httpx) are imported on first use, so that reading a status
    or changing a setting, on every managed machine, does not pay for them."""

    def __init__(self, nameservers: Sequence[HostAddress] | None) -> None:
        self.nameservers = nameservers

    def search_domains(self) -> Sequence[str]:
        from volact.client import discovery

        return discovery.search_domains()

    def lookup_srv(self, name: str, timeout: float) -> Sequence[SrvRecord]:
        from volact.client import discovery

        return discovery.lookup_srv(name, nameservers=self.nameservers, timeout=timeout)

    async def lookup_srv_async(self, name: str, timeout: float) -> Sequence[SrvRecord]:
        from volact.client import discovery

        return await discovery.lookup_srv_async(
            name, nameservers=self.nameservers, timeout=timeout
        )

    def exchange(self, address: HostAddress, frame: bytes, timeout: float) -> bytes:
        from volact.client import transport

        return transport.exchange(address, frame, timeout, nameservers=self.nameservers)

    async def exchange_async(self, address: HostAddress, frame: bytes, timeout: float) -> bytes:
        from volact.client import transport

        return await transport.exchange_async(
            address, frame, timeout, nameservers=self.nameservers
        )

    def post_mak(self, url: str, request: MakRequest) -> MakResponse:
        return mak.post_mak(url, request)

    def get_revocations(self, url: str) -> RevocationsAnswer:
        from volact.client import revocations

        return revocations.fetch_revocations(url)


def _problem_events(s: ClientState) -> list[dict[str, Any]]:
    """An event for a stored document that failed re-verification (it is about to go)."""
    if s.load_problem is None:
        return []
    return [{"event": "stored_state_refused", "reason": s.load_problem}]


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
        get_revocations: Callable[[str], RevocationsAnswer] | None = None,
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
        net = _Network(self._nameservers)
        self._search_domains = search_domains or net.search_domains
        self._lookup: SyncLookup = lookup_srv or net.lookup_srv
        self._exchange: SyncExchange = exchange or net.exchange
        self._lookup_async: AsyncLookup = lookup_srv_async or net.lookup_srv_async
        self._exchange_async: AsyncExchange = exchange_async or net.exchange_async
        self._authority_url = authority_url
        self._post_mak = post_mak or net.post_mak
        self._attempt_seconds = attempt_seconds
        self._exchange_seconds = exchange_seconds
        self._machine_id = machine_id
        self._fingerprint: str | None = None
        self._get_revocations = get_revocations or net.get_revocations
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
        """The stored state, checked and re-verified (see :mod:`volact.client.state`).

        A home found on another machine than the one it was made on is re-armed
        (and that is saved and logged) before it is returned.
        """
        s = self.store.load(self.profile)
        if self._moved(s):
            with self.store.locked():
                return self._load_locked()
        return s

    def _load_locked(self) -> ClientState:
        """:meth:`load`, for a caller that holds the home's lock (and saves after)."""
        s = self.store.load(self.profile)
        if s.machine_fingerprint is None:  # a home from before fingerprints: adopt
            return replace(s, machine_fingerprint=self._current_fingerprint())
        if self._moved(s):
            s = state.rearm(
                s,
                now=self.now(),
                cmid=uuid.uuid4(),
                reason=state.MOVED_NOTICE,
                machine_fingerprint=self._current_fingerprint(),
            )
            self.store.save(s)
            self.log_events(
                [{"event": "home_moved", "reason": state.MOVED_NOTICE, "cmid": str(s.cmid)}]
            )
        return s

    def _current_fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = machine_fingerprint(self._machine_id())
        return self._fingerprint

    def _moved(self, s: ClientState) -> bool:
        return s.machine_fingerprint is not None and s.machine_fingerprint != (
            self._current_fingerprint()
        )

    def status(self) -> Status:
        """Where the license stands now (no network)."""
        return Status.of(self.load(), self.profile, self.now())

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
            s = change(loaded)
            self.store.save(s)
            self.log_events([*_problem_events(loaded), event])
        return Status.of(s, self.profile, self.now())

    def install_key(self, key: str, *, sku: str | None = None) -> Status:
        """Install a GVLK (host activation) or a MAK (authority activation)."""
        parsed, sku_id = state.resolve_key(self.profile, key, sku)
        now = self.now()
        return self._update(
            lambda s: state.install_key(s, now, parsed, sku_id),
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
        return self._update(
            lambda s: state.rearm(s, now=now, cmid=uuid.uuid4()), {"event": "rearmed"}
        )

    # ---- activating ----------------------------------------------------------------

    def _prepare(self) -> tuple[ClientState, AttemptPlanner]:
        s = self.load()
        planner = state.plan_attempt(
            s,
            self.profile,
            now=self.now(),
            nonce=self._random_bytes(16),
            search_domains=() if s.domain or s.manual_host else self._search_domains(),
            rng=self._rng,
            started=self._monotonic(),
            time_limit=self._attempt_seconds,
            exchange_timeout=self._exchange_seconds,
        )
        return s, planner

    def _commit(self, before: ClientState, outcome: Outcome) -> Status:
        now = self.now()
        with self.store.locked():
            s = self._load_locked()
            if not state.same_request(before, s):
                # Rearmed or re-keyed meanwhile: this outcome answers a request nobody holds.
                self.log_events(
                    [{"event": "outcome_discarded", "reason": "state changed meanwhile"}]
                )
                return Status.of(s, self.profile, now)
            problems = _problem_events(s)
            s = state.apply_outcome(s, outcome, now)
            self.store.save(s)
            self.log_events([*problems, *outcome.events])
        return Status.of(s, self.profile, now)

    def activate(self) -> Status:
        """Activate (or renew) now: find a host, ask it, verify and store its answer."""
        if self._is_mak():
            return self._activate_mak()
        before, planner = self._prepare()
        outcome = run_sync(
            planner, lookup_srv=self._lookup, exchange=self._exchange, monotonic=self._monotonic
        )
        return self._commit(before, outcome)

    async def activate_async(self) -> Status:
        """The asyncio twin of :meth:`activate`."""
        import asyncio

        if self._is_mak():
            return await asyncio.to_thread(self._activate_mak)
        before, planner = self._prepare()
        outcome = await run_async(
            planner,
            lookup_srv=self._lookup_async,
            exchange=self._exchange_async,
            monotonic=self._monotonic,
        )
        return self._commit(before, outcome)

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
            s = self._load_locked()
            confirmation = mak.check_response(s, self.profile, response)
            s = state.mak_activated(s, confirmation, now)
            self.store.save(s)
            self.log_events([{"event": "mak_activated", "cmid": str(s.cmid)}])
        return Status.of(s, self.profile, now)

    def _activate_mak(self) -> Status:
        s = self.load()
        if s.machine.permanent:
            return Status.of(s, self.profile, self.now())
        url = self._authority_url or self.profile.authority_url
        if not url:
            raise ConfigurationError(
                "no authority URL to activate this MAK online: give --authority URL, or use "
                "`volact client mak-request` and `mak-apply` to activate offline"
            )
        request = mak.build_request(s)
        self.log_events([{"event": "mak_request_sent", "authority": url, "cmid": str(s.cmid)}])
        try:
            return self.mak_apply(self._post_mak(url, request))
        except (TransportError, VerificationError) as exc:
            now = self.now()
            with self.store.locked():
                s = state.attempt_failed(self._load_locked(), now, host="authority", error=str(exc))
                self.store.save(s)
                self.log_events([{"event": "mak_failed", "reason": str(exc)}])
            return Status.of(s, self.profile, now)

    # ---- revocations ---------------------------------------------------------------

    def apply_revocations(self, data: bytes) -> RevocationUpdate:
        """Keep ``data`` (a vendor-signed revocation list) if it verifies and is newer
        than the list in force (the profile's or the stored one). An older or equal
        list changes nothing; one that does not verify raises
        :class:`~volact.errors.VerificationError` and changes nothing.

        Stored tickets from hosts the new list revokes are dropped on the next load.
        """
        # Checked before the lock is taken: a forged list never touches the home.
        offered = state.check_revocation_list(self.profile, data)
        with self.store.locked():
            s, update = state.offer_revocations(self._load_locked(), self.profile, offered, data)
            if update.updated:
                self.store.save(s)
            self._log_revocations(update)
        return update

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
            _, update = state.offer_revocations(self.load(), self.profile, None, None)
            self.log_events(
                [{"event": "revocations_unchanged", "sequence": None, "previous": update.previous}]
            )
            return update
        return self.apply_revocations(answer.revocation_list)

    def _log_revocations(self, update: RevocationUpdate) -> None:
        self.log_events(
            [
                {
                    "event": "revocations_updated" if update.updated else "revocations_unchanged",
                    "sequence": update.offered,
                    "previous": update.previous,
                }
            ]
        )

    # ---- the schedule (volact.client.schedule) -------------------------------------

    def run_schedule(
        self,
        *,
        stop: threading.Event | None = None,
        on_step: Callable[[Status, bool], None] | None = None,
        max_steps: int | None = None,
        sleep: Callable[[float], bool] | None = None,
        max_sleep: float = MAX_SLEEP_SECONDS,
    ) -> Status:
        """Keep the license: act when due, sleep until the next action or state change,
        until ``stop`` is set or after ``max_steps`` steps. A failed step is logged and
        retried one activation interval later; see :func:`volact.client.schedule.run_schedule`.
        """
        return schedule.run_schedule(
            self, stop=stop, on_step=on_step, max_steps=max_steps, sleep=sleep,
            max_sleep=max_sleep,
        )  # fmt: skip

    async def run_schedule_async(
        self,
        *,
        stop: asyncio.Event | None = None,
        on_step: Callable[[Status, bool], None] | None = None,
        max_steps: int | None = None,
        max_sleep: float = MAX_SLEEP_SECONDS,
    ) -> Status:
        """The asyncio twin of :meth:`run_schedule` (cancel the task, or set ``stop``)."""
        return await schedule.run_schedule_async(
            self, stop=stop, on_step=on_step, max_steps=max_steps, max_sleep=max_sleep
        )

    def start_background(
        self, *, on_step: Callable[[Status, bool], None] | None = None
    ) -> BackgroundSchedule:
        """Run :meth:`run_schedule` in a daemon thread; stop it with ``.stop()``."""
        return BackgroundSchedule(self, on_step)

    # ---- log -----------------------------------------------------------------------

    def log_events(self, events: list[dict[str, Any]]) -> None:
        """Append ``events`` to the home's event log, stamped with the clock's time."""
        now = self.now()
        for e in events:
            self.store.append_event({"time": iso(now), "t": now, **e})


__all__ = [
    "Activation",
    "BackgroundSchedule",
    "LicenseState",
    "RevocationUpdate",
    "Status",
    "init_home",
    "iso",
]
