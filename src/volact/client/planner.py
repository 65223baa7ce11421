"""One activation attempt, planned without I/O: which host to ask, in what order, and
what to make of its answer.

:class:`AttemptPlanner` is the one object that holds discovery, choice, host caching,
failover, the time bound and reply verification (STYLE §4, like dnspython's
``resolver._Resolution``). It hands out :class:`LookupSrv` and :class:`Exchange`
steps and is fed their results; :func:`run_sync` and :func:`run_async` are the two
short driver loops over it, given the I/O as callables.

Order of hosts:

1. a manual host (``HOST[:PORT]``) wins, and is the only host tried;
2. otherwise, with host caching on, the cached host (the last one that answered);
3. then SRV records of the profile's label in the configured domain, else in each
   DNS search domain in turn, ordered by RFC 2782 (lowest priority first,
   weighted random within a priority, by the injected ``random.Random``).

Moving (the last ticket asked the client to move, :attr:`DiscoveryConfig.avoid`):
the cached host is not asked first; SRV records are tried in their order without
the host that asked, and that host comes last, so the client stays licensed with
it when no other host answers. During a move "count too low" from a new host does
not end the attempt either: the next host is tried (:func:`move_order`).

A host that does not answer, or answers with an error other than "count too low",
or whose ticket does not verify (or whose dates are implausible: issued in the
future, already expired, valid beyond 180 days), is dropped for this attempt and
the next is tried. Every exchange's timeout is cut to the time left in the attempt.

A host's license is fetched on first contact and cached by host id. When a cached
license no longer verifies, or the host's ticket does not verify against it (its key
or groups changed; or the cache holds an impostor's license for the same id), the
license is fetched once more in the same attempt; only a fetched license under
which the ticket verifies replaces the cached one (``Outcome.new_licenses``).
SRV answers are data from the network: records that are malformed are skipped and
their number is capped. This module imports no socket, asyncio or time.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from volact.catalog import Catalog
from volact.client.machine import implausible_validity
from volact.client.srv import HostAddress, SrvRecord, valid_host_name
from volact.documents import (
    ActivationTicket,
    HostLicense,
    RevocationList,
    verify_host_license,
    verify_ticket,
)
from volact.errors import (
    BadSignature,
    DecodeError,
    SkuNotCovered,
    TransportError,
    UsageError,
    VerificationError,
    WrongHost,
)
from volact.wire import (
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_MOVE,
    ActivateReply,
    ActivateRequest,
    GetLicense,
    LicenseReply,
    Result,
    decode,
    encode,
)

#: Records taken from one SRV answer; more than this is not a real deployment.
MAX_SRV_RECORDS = 32
#: Hosts tried in one attempt, whatever DNS says.
MAX_HOSTS_PER_ATTEMPT = 16
#: Search domains looked at in one attempt.
MAX_SEARCH_DOMAINS = 8
#: Default bound on one whole attempt and on one exchange (seconds).
DEFAULT_ATTEMPT_SECONDS = 30.0
DEFAULT_EXCHANGE_SECONDS = 5.0

#: Ticket failures that a newer license of the same host id could cure (another host
#: key, more groups); a replay or another machine's ticket is not one of them.
_LICENSE_MISMATCH = (BadSignature, SkuNotCovered)

#: A plausible host name from an SRV target (letters, digits, ``-``, ``_``).
valid_target = valid_host_name


def sanitize_srv(records: Sequence[Any]) -> list[SrvRecord]:
    """The usable records of an answer: well-formed, deduplicated, at most 32."""
    seen: set[tuple[str, int]] = set()
    out: list[SrvRecord] = []
    for rec in records:
        if len(out) >= MAX_SRV_RECORDS:
            break
        if not isinstance(rec, SrvRecord):
            continue
        ok_numbers = all(
            isinstance(v, int) and 0 <= v <= 0xFFFF for v in (rec.priority, rec.weight, rec.port)
        )
        if not ok_numbers or rec.port == 0 or not isinstance(rec.target, str):
            continue
        if not valid_target(rec.target):  # includes "." (RFC 2782: service not offered here)
            continue
        target = rec.target.rstrip(".").lower()
        if (target, rec.port) in seen:
            continue
        seen.add((target, rec.port))
        out.append(SrvRecord(rec.priority, rec.weight, rec.port, target))
    return out


def rfc2782_order(records: Sequence[SrvRecord], rng: random.Random) -> list[SrvRecord]:
    """Records in the order to try them (RFC 2782).

    Lowest priority first; within a priority, each pick is weighted random over the
    records not yet picked, a record of weight ``w`` chosen with probability
    ``w / sum``. Records of weight 0 come after the weighted ones of their priority
    (in random order): the RFC gives them "a very small chance", and zero is the
    smallest (Go's resolver does the same).
    """
    out: list[SrvRecord] = []
    for prio in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == prio]
        while group:
            total = sum(r.weight for r in group)
            if total == 0:
                rng.shuffle(group)
                out.extend(group)
                break
            point = rng.randrange(total)
            running = 0
            for i, r in enumerate(group):
                running += r.weight
                if running > point:
                    out.append(group.pop(i))
                    break
    return out


def same_host(a: HostAddress, b: HostAddress) -> bool:
    """Whether two addresses name the same host (names compare without case and a final dot)."""
    return a.port == b.port and a.host.rstrip(".").lower() == b.host.rstrip(".").lower()


def move_order(candidates: Sequence[HostAddress], avoid: HostAddress | None) -> list[HostAddress]:
    """The hosts to try, in order, for a client asked to move away from ``avoid``.

    Every other candidate keeps its place; ``avoid`` is moved to the end (added
    when discovery did not return it), so it is asked only when no other host
    grants. Without ``avoid`` the order is unchanged.
    """
    if avoid is None:
        return list(candidates)
    return [c for c in candidates if not same_host(c, avoid)] + [avoid]


@dataclass(frozen=True)
class DiscoveryConfig:
    """Where an attempt looks for hosts."""

    label: str  #: the SRV service label from the profile, e.g. ``_volact._tcp``
    manual_host: HostAddress | None = None  #: a configured host; wins over DNS
    domain: str | None = None  #: the domain to look in; None means the search domains
    search_domains: tuple[str, ...] = ()  #: the machine's DNS search domains
    caching: bool = True  #: go straight back to the host that last answered
    cached_host: HostAddress | None = None  #: that host
    #: the host whose ticket asked this client to move: tried last (None: no move)
    avoid: HostAddress | None = None

    def srv_names(self) -> list[str]:
        domains = [self.domain] if self.domain else list(self.search_domains[:MAX_SEARCH_DOMAINS])
        names = []
        for d in domains:
            d = d.strip().strip(".")
            if d:
                names.append(f"{self.label}.{d}")
        return names


@dataclass(frozen=True)
class Verifier:
    """What a reply is checked against: the profile's trust root and catalog."""

    vendor_public_key: bytes  #: the vendor key from the product profile
    catalog: Catalog  #: to check that the host license covers the ticket's SKU
    revocations: RevocationList | None = None  #: the vendor's revocations, if any


# ---- steps -------------------------------------------------------------------------


@dataclass(frozen=True)
class LookupSrv:
    """Look up SRV records at ``name`` and call :meth:`AttemptPlanner.srv_answer`."""

    name: str  #: the full owner name, e.g. ``_volact._tcp.corp.example``
    timeout: float  #: seconds the lookup may take


@dataclass(frozen=True)
class Exchange:
    """Send ``frame`` to ``address``, read one frame back, call ``exchange_answer``."""

    address: HostAddress  #: the host to ask
    frame: bytes  #: one complete request frame
    timeout: float  #: seconds the exchange may take (connect, send, receive)
    purpose: str  #: ``activate`` or ``license``


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended."""

    host: HostAddress | None  #: the host whose answer ended it (None if none did)
    reply: ActivateReply | None  #: that host's reply (OK or COUNT_TOO_LOW)
    ticket: ActivationTicket | None  #: the verified ticket, when activated
    ticket_bytes: bytes | None  #: the signed ticket as received
    license_bytes: bytes | None  #: the host license the ticket verified against
    new_licenses: Mapping[bytes, bytes]  #: host id → license fetched in this attempt
    error: str | None  #: why the attempt failed (None when a host answered usefully)
    failures: tuple[tuple[str, str], ...]  #: (host, reason) for every host dropped
    events: tuple[dict[str, Any], ...]  #: client event-log entries, in order
    last_reply: ActivateReply | None = None  #: the last reply received, even a refusal
    last_host: HostAddress | None = None  #: the host that sent it
    #: end of the granted activation: the ticket's, capped by the host license's expiry
    valid_until: int | None = None

    @property
    def activated(self) -> bool:
        return self.ticket is not None

    @property
    def answered(self) -> bool:
        """A host answered with OK or COUNT_TOO_LOW (the only non-failures)."""
        return self.reply is not None


@dataclass(frozen=True)
class Finished:
    """The attempt is over."""

    outcome: Outcome  #: what happened


Step = LookupSrv | Exchange | Finished


@dataclass
class _Pending:
    address: HostAddress
    purpose: str
    reply: ActivateReply | None = None


@dataclass
class AttemptPlanner:
    """One activation attempt, as a sans-I/O state machine (see the module docstring)."""

    request: ActivateRequest  #: the request to send (its nonce binds the ticket)
    verifier: Verifier  #: the trust root
    config: DiscoveryConfig  #: where to look
    licenses: Mapping[bytes, bytes]  #: cached host licenses by host id
    rng: random.Random  #: for the RFC 2782 choice
    started: float  #: the driver's monotonic clock at the start
    time_limit: float = DEFAULT_ATTEMPT_SECONDS  #: bound on the whole attempt
    exchange_timeout: float = DEFAULT_EXCHANGE_SECONDS  #: bound on one exchange
    _queue: list[HostAddress] = field(default_factory=list, init=False)
    _tried: set[HostAddress] = field(default_factory=set, init=False)
    _names: list[str] = field(default_factory=list, init=False)
    _waiting: LookupSrv | _Pending | None = field(default=None, init=False)
    _failures: list[tuple[str, str]] = field(default_factory=list, init=False)
    _events: list[dict[str, Any]] = field(default_factory=list, init=False)
    _new_licenses: dict[bytes, bytes] = field(default_factory=dict, init=False)
    _outcome: Outcome | None = field(default=None, init=False)
    _looked_up: list[str] = field(default_factory=list, init=False)
    _last_reply: tuple[HostAddress, ActivateReply] | None = field(default=None, init=False)
    _answered_at: float = field(default=0.0, init=False)
    _downgraded: set[HostAddress] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        cfg = self.config
        if cfg.manual_host is not None:
            self._queue.append(cfg.manual_host)
        else:
            cached = cfg.cached_host
            # A client asked to move does not go straight back to the host that asked.
            avoid = cfg.avoid
            moving_away = cached is not None and avoid is not None and same_host(cached, avoid)
            if cfg.caching and cached is not None and not moving_away:
                self._queue.append(cached)
            self._names = cfg.srv_names()

    # ---- the driver asks -----------------------------------------------------------

    def next_step(self, now: float) -> Step:
        """The next thing to do, at monotonic time ``now``."""
        if self._outcome is not None:
            return Finished(self._outcome)
        if self._waiting is not None:
            raise UsageError("answer the previous step before asking for the next")
        remaining = self.started + self.time_limit - now
        if remaining <= 0:
            return self._finish_failed(
                f"no host granted within the attempt's time bound ({self.time_limit:g} s)"
            )
        timeout = min(self.exchange_timeout, remaining)
        while self._queue:
            address = self._queue.pop(0)
            if address in self._tried:
                continue
            if len(self._tried) >= MAX_HOSTS_PER_ATTEMPT:
                break
            return self._activate(address, timeout)
        if self._names and len(self._tried) < MAX_HOSTS_PER_ATTEMPT:
            name = self._names.pop(0)
            step = LookupSrv(name, timeout)
            self._waiting = step
            return step
        if self._moving:
            # Every other host has been tried: the one that asked us to move is the
            # last resort (it still grants), so the move never costs the license.
            avoid = self.config.avoid
            assert avoid is not None
            if all(not same_host(t, avoid) for t in self._tried):
                # (Beyond MAX_HOSTS_PER_ATTEMPT if need be: one more exchange, bounded.)
                self._events.append({"event": "move_last_resort", "host": str(avoid)})
                return self._activate(avoid, timeout)
        return self._finish_failed(self._no_host_reason())

    def _activate(self, address: HostAddress, timeout: float) -> Exchange:
        self._tried.add(address)
        self._waiting = _Pending(address, "activate")
        req = self.request
        self._events.append(
            {
                "event": "request_sent",
                "host": str(address),
                "cmid": str(req.cmid),
                "state": req.state.name.lower(),
                "minutes_left": req.minutes_left,
            }
        )
        return Exchange(address, encode(req), timeout, "activate")

    @property
    def _moving(self) -> bool:
        return self.config.avoid is not None and self.config.manual_host is None

    # ---- the driver answers --------------------------------------------------------

    def srv_answer(self, records: Sequence[Any]) -> None:
        step = self._expect_lookup()
        good = sanitize_srv(records)
        self._looked_up.append(step.name)
        self._events.append(
            {
                "event": "srv_lookup",
                "name": step.name,
                "records": len(records),
                "usable": len(good),
            }
        )
        found = [HostAddress(rec.target, rec.port) for rec in rfc2782_order(good, self.rng)]
        if self._moving:
            found = move_order(found, self.config.avoid)[:-1]  # the avoided host comes last
        self._queue.extend(found)

    def srv_failed(self, reason: str) -> None:
        step = self._expect_lookup()
        self._looked_up.append(step.name)
        self._events.append({"event": "srv_lookup", "name": step.name, "error": reason})
        self._failures.append((step.name, f"DNS lookup failed: {reason}"))

    def exchange_failed(self, reason: str) -> None:
        """The host did not answer (refused, reset, timed out)."""
        pending = self._expect_exchange()
        self._drop(pending.address, f"no answer: {reason}")

    def exchange_answer(self, data: bytes, now: float | None = None) -> Exchange | None:
        """A frame came back (at monotonic ``now``). Returns a follow-up exchange
        (license fetch) or None. Without ``now``, the attempt's start is assumed."""
        pending = self._expect_exchange()
        self._answered_at = self.started if now is None else now
        try:
            msg = decode(data)
        except DecodeError as exc:
            self._drop(pending.address, f"malformed reply: {exc}")
            return None
        if pending.purpose == "activate":
            if not isinstance(msg, ActivateReply):
                self._drop(pending.address, "the host sent something other than a reply")
                return None
            return self._on_reply(pending.address, msg)
        if not isinstance(msg, LicenseReply) or pending.reply is None:
            self._drop(pending.address, "the host sent something other than its license")
            return None
        self._on_license(pending.address, pending.reply, msg.host_license, fetched=True)
        return None

    # ---- internals -----------------------------------------------------------------

    def _expect_lookup(self) -> LookupSrv:
        w = self._waiting
        if not isinstance(w, LookupSrv):
            raise UsageError("no SRV lookup is pending")
        self._waiting = None
        return w

    def _expect_exchange(self) -> _Pending:
        w = self._waiting
        if not isinstance(w, _Pending):
            raise UsageError("no exchange is pending")
        self._waiting = None
        return w

    def _on_reply(self, address: HostAddress, reply: ActivateReply) -> Exchange | None:
        self._last_reply = (address, reply)
        self._events.append(
            {
                "event": "reply_processed",
                "host": str(address),
                "result": reply.result.label,
                "count": reply.count,
                "required": reply.required,
                "activation_interval": reply.activation_interval,
                "renewal_interval": reply.renewal_interval,
            }
        )
        if (
            reply.result is Result.UNSUPPORTED_VERSION
            and self.request.version > PROTOCOL_VERSION
            and address not in self._downgraded
        ):
            # A host from before version 2: ask again in version 1 (a grant then
            # carries no move hint). Forging this unsigned answer can only keep a
            # client from being asked to move, never forge or alter a grant.
            self._downgraded.add(address)
            remaining = self.started + self.time_limit - self._answered_at
            if remaining > 0:
                self._waiting = _Pending(address, "activate")
                old = replace(self.request, version=PROTOCOL_VERSION)
                self._events.append({"event": "version_fallback", "host": str(address)})
                return Exchange(
                    address, encode(old), min(self.exchange_timeout, remaining), "activate"
                )
        if reply.result is Result.COUNT_TOO_LOW:
            avoid = self.config.avoid
            if self._moving and avoid is not None and not same_host(address, avoid):
                # The new host is still counting: we were counted there, and stay
                # licensed with the host we are leaving while it gets there.
                self._drop(address, "count too low at the new host; trying the next")
                return None
            self._finish(address, reply)
            return None
        if reply.result is not Result.OK:
            self._drop(address, f"refused: {reply.result.label} ({reply.result.description})")
            return None
        cached = self.licenses.get(reply.host_id)
        if cached is not None and self._on_license(address, reply, cached, fetched=False):
            return None
        if self._outcome is not None:
            return None
        # First contact with this host (or its cached license no longer holds). The
        # fetch gets what is left of the attempt, so the whole attempt stays bounded.
        remaining = self.started + self.time_limit - self._answered_at
        if remaining <= 0:
            self._drop(address, "no time left in the attempt to fetch the host's license")
            return None
        self._waiting = _Pending(address, "license", reply)
        timeout = min(self.exchange_timeout, remaining)
        return Exchange(address, encode(GetLicense()), timeout, "license")

    def _on_license(
        self, address: HostAddress, reply: ActivateReply, lic_bytes: bytes, *, fetched: bool
    ) -> bool:
        """Verify ``reply``'s ticket against ``lic_bytes``; finish or drop. True if done."""
        assert reply.ticket is not None
        try:
            lic = self._verify_license(lic_bytes, reply.host_id)
        except (VerificationError, DecodeError) as exc:
            if not fetched:
                return False  # the cached copy is stale: fetch the host's current one
            self._drop(address, f"host license refused: {exc}")
            return True
        try:
            ticket = verify_ticket(
                reply.ticket,
                lic,
                self.verifier.catalog,
                cmid=self.request.cmid,
                nonce=self.request.nonce,
            )
            if ticket.sku != self.request.sku:
                raise VerificationError(f"the ticket is for SKU {ticket.sku}, not the one asked")
            why = implausible_validity(
                ticket.issued_at, ticket.valid_until, self.request.client_time
            )
            if why is not None:
                raise VerificationError(why)
        except (VerificationError, DecodeError) as exc:
            if not fetched and isinstance(exc, _LICENSE_MISMATCH):
                # The cached license may be another host's that once used this id (an
                # impostor), or an older one with fewer groups: fetch the host's
                # current license once (a fetched copy is never fetched again).
                self._events.append(
                    {"event": "host_license_stale", "host": str(address), "reason": str(exc)}
                )
                return False
            self._drop(address, f"ticket refused: {exc}")
            return True
        if fetched:
            self._new_licenses[reply.host_id] = lic_bytes
        if ticket.move:
            self._events.append({"event": "move_requested", "host": str(address)})
        self._finish(address, reply, ticket, lic_bytes, lic.expires_at)
        return True

    def _verify_license(self, data: bytes, host_id: bytes) -> HostLicense:
        if not data:
            raise VerificationError("the host has no license")
        lic = verify_host_license(
            data,
            self.verifier.vendor_public_key,
            now=self.request.client_time,
            revocations=self.verifier.revocations,
        )
        if lic.host_id != host_id:
            raise WrongHost(f"the license is for host {lic.host_id.hex()}, not {host_id.hex()}")
        return lic

    def _drop(self, address: HostAddress, reason: str) -> None:
        self._failures.append((str(address), reason))
        self._events.append({"event": "host_failed", "host": str(address), "reason": reason})

    def _no_host_reason(self) -> str:
        if self._tried:
            last_host, last_reason = self._failures[-1]
            return f"no host granted activation; last: {last_host}: {last_reason}"
        if self.config.manual_host is None and not self._looked_up:
            return (
                "no host to ask: no manual host, no domain and no DNS search domain "
                "(use set-host or set-domain)"
            )
        names = ", ".join(self._looked_up)
        dns_errors = "".join(f"; {name}: {why}" for name, why in self._failures)
        return f"no host found: no usable SRV records at {names}{dns_errors}"

    def _finish(
        self,
        address: HostAddress,
        reply: ActivateReply,
        ticket: ActivationTicket | None = None,
        license_bytes: bytes | None = None,
        license_expires_at: int | None = None,
    ) -> None:
        valid_until = None
        if ticket is not None:
            valid_until = ticket.valid_until
            if license_expires_at is not None:
                valid_until = min(valid_until, license_expires_at)
        self._outcome = Outcome(
            host=address,
            reply=reply,
            ticket=ticket,
            ticket_bytes=reply.ticket if ticket is not None else None,
            license_bytes=license_bytes,
            new_licenses=dict(self._new_licenses),
            error=None,
            failures=tuple(self._failures),
            events=tuple(self._events),
            last_reply=reply,
            last_host=address,
            valid_until=valid_until,
        )

    def _finish_failed(self, reason: str) -> Finished:
        self._outcome = Outcome(
            host=None,
            reply=None,
            ticket=None,
            ticket_bytes=None,
            license_bytes=None,
            new_licenses=dict(self._new_licenses),
            error=reason,
            failures=tuple(self._failures),
            events=(*self._events, {"event": "attempt_failed", "reason": reason}),
            last_reply=None if self._last_reply is None else self._last_reply[1],
            last_host=None if self._last_reply is None else self._last_reply[0],
        )
        return Finished(self._outcome)


# ---- drivers -----------------------------------------------------------------------

LookupFn = Callable[[str, float], Sequence[SrvRecord]]
ExchangeFn = Callable[[HostAddress, bytes, float], bytes]
AsyncLookupFn = Callable[[str, float], Awaitable[Sequence[SrvRecord]]]
AsyncExchangeFn = Callable[[HostAddress, bytes, float], Awaitable[bytes]]


def run_sync(
    planner: AttemptPlanner,
    *,
    lookup_srv: LookupFn,
    exchange: ExchangeFn,
    monotonic: Callable[[], float],
) -> Outcome:
    """Drive ``planner`` with blocking I/O until it finishes."""
    # Each host costs at most two exchanges and each domain one lookup: a bounded loop.
    for _ in range(4 * MAX_HOSTS_PER_ATTEMPT + MAX_SEARCH_DOMAINS + 4):
        step = planner.next_step(monotonic())
        if isinstance(step, Finished):
            return step.outcome
        if isinstance(step, LookupSrv):
            try:
                records = lookup_srv(step.name, step.timeout)
            except TransportError as exc:
                planner.srv_failed(str(exc))
            else:
                planner.srv_answer(records)
            continue
        ex: Exchange | None = step
        while ex is not None:
            try:
                data = exchange(ex.address, ex.frame, ex.timeout)
            except TransportError as exc:
                planner.exchange_failed(str(exc))
                break
            ex = planner.exchange_answer(data, monotonic())
    raise AssertionError("the planner did not finish within its step bound")


async def run_async(
    planner: AttemptPlanner,
    *,
    lookup_srv: AsyncLookupFn,
    exchange: AsyncExchangeFn,
    monotonic: Callable[[], float],
) -> Outcome:
    """Drive ``planner`` with asyncio I/O until it finishes (the twin of :func:`run_sync`)."""
    for _ in range(4 * MAX_HOSTS_PER_ATTEMPT + MAX_SEARCH_DOMAINS + 4):
        step = planner.next_step(monotonic())
        if isinstance(step, Finished):
            return step.outcome
        if isinstance(step, LookupSrv):
            try:
                records = await lookup_srv(step.name, step.timeout)
            except TransportError as exc:
                planner.srv_failed(str(exc))
            else:
                planner.srv_answer(records)
            continue
        ex: Exchange | None = step
        while ex is not None:
            try:
                data = await exchange(ex.address, ex.frame, ex.timeout)
            except TransportError as exc:
                planner.exchange_failed(str(exc))
                break
            ex = planner.exchange_answer(data, monotonic())
    raise AssertionError("the planner did not finish within its step bound")


def request_for(
    *,
    sku: uuid.UUID,
    cmid: uuid.UUID,
    nonce: bytes,
    now: int,
    state: Any,
    minutes_left: int,
    vm: bool,
    workstation: str,
) -> ActivateRequest:
    """The activation request, with the workstation name cut to what the wire takes."""
    name = workstation.encode("utf-8")[:63].decode("utf-8", "ignore")
    return ActivateRequest(
        sku, cmid, nonce, now, state, minutes_left, vm, name, PROTOCOL_VERSION_MOVE
    )
