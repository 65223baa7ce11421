"""The fleet simulator: volact's own sans-I/O cores run in simulated time.

Every host is a real :class:`~volact.host.policy.HostCore`; every client is a real
:class:`~volact.client.machine.Machine` whose attempts are planned by the real
:class:`~volact.client.planner.AttemptPlanner` (cached host first, SRV records
ordered by the real RFC 2782 choice, failover, the attempt's time bound, ticket
and host-license verification). The clock is an integer moved by the simulator in
ticks (15 minutes by default: every interval volact allows is a multiple); nothing
sleeps, nothing opens a socket.

How 90,000 machines over months fit in seconds (``docs/simulator.md`` says it in
full):

* **Planner paths.** Machines due in the same tick that the planner cannot tell
  apart (the same cached host, known host licenses and population view: what of
  the population a path depends on) share one tree of planner paths; machines
  renewing with their reachable cached host share it whatever other host licenses
  they know, as long as that answer ends the attempt (the planner then looks up no
  license but that host's). A path is what happens in one attempt: which hosts
  are asked and what each answers. The real planner is driven once per distinct
  path (the tree grows when a machine takes a new one); what differs between
  machines is drawn per machine: the RFC 2782 order
  (:func:`~volact.client.planner.rfc2782_order` with the scenario's seeded
  generator), lost exchanges, and the host's decision. At the end of a path the
  real ``Machine`` transition runs once per distinct machine state and, within a
  tick, per distinct :func:`transition_key` of the outcome, and every machine in
  that state that took such a path gets the (equal) result.
* **Host decisions** are made per machine, by the real ``HostCore`` on the
  machine's own encoded request, except one exact shortcut: when a machine the
  host already counts (with the same VM flag) asks at an instant when a full
  decision for the same SKU saw the count the host still has, its CMID is touched
  in the host's real ``ClientIndex`` and it gets that decision's result. Only full
  decisions can change the count (a counted machine touched again changes nothing),
  and the result depends only on the SKU, the instant and the count, so it is the
  one ``HostCore`` would give. A test checks the simulator's results against a
  fresh ``HostCore`` fed the same requests one by one.
* **Signatures.** Hosts sign tickets with a stand-in key (64 zero bytes, no
  Ed25519) inside the simulation. The reply that grows a planner path is re-signed
  with the host's real Ed25519 key (addressed to that path's machine), so the
  client's real verification runs once per path.

Times are Unix seconds from the scenario's day 0 (UTC).
"""

from __future__ import annotations

import hashlib
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from volact.catalog import Catalog, demo_catalog
from volact.client.machine import Machine
from volact.client.planner import (
    DEFAULT_ATTEMPT_SECONDS,
    DEFAULT_EXCHANGE_SECONDS,
    MAX_HOSTS_PER_ATTEMPT,
    AttemptPlanner,
    DiscoveryConfig,
    Exchange,
    Finished,
    LookupSrv,
    Outcome,
    Step,
    Verifier,
    rfc2782_order,
)
from volact.client.srv import HostAddress, SrvRecord
from volact.client.state import ClientState, apply_outcome
from volact.documents import ActivationTicket, HostLicense
from volact.host.config import HostConfig
from volact.host.policy import HostCore
from volact.host.rebalance import Rebalance, selects, share_from_percent
from volact.keys import KeyKind
from volact.signing import SigningKey
from volact.sim.scenario import HostSpec, Population, Scenario
from volact.wire import (
    DAY,
    DEFAULT_PORT,
    PROTOCOL_VERSION_MOVE,
    ActivateReply,
    ActivateRequest,
    GetLicense,
    LicenseState,
    Result,
    decode,
    encode,
)

HOUR = 3600
#: The DNS label the simulated product uses (any profile's label would do).
SIM_LABEL = "_volact._tcp"
#: What a DNS lookup costs in simulated seconds of the attempt's time bound.
DNS_SECONDS = 0.05
#: Bytes of TCP/IP headers per exchange (SYN, SYN-ACK, ACK, request, reply, FIN x2, ACK:
#: 8 packets of 40 bytes, IPv4 without options): an estimate, shown as such.
TCP_OVERHEAD_BYTES = 8 * 40
STATES = ("unlicensed", "grace", "licensed", "notification")
STAND_IN_NOTE = (
    "Inside the simulation hosts sign tickets with a stand-in (64 zero bytes, no "
    "Ed25519); each distinct client path is re-signed with the host's real Ed25519 key "
    "and verified by the real client code."
)
_STAND_IN_SIGNATURE = bytes(64)
_FAIL = -1
_LICENSE = -2
#: A grant whose signed ticket asks the client to move (rebalance): its own edge, as
#: the ticket differs from a plain grant's and the client takes another path next.
_MOVE = -3
_SAW_FAILED_EXCHANGE = 1
_SAW_FAILED_ATTEMPT = 2
#: Answers that end an attempt (the planner asks no further host after them).
_USEFUL = frozenset({int(Result.OK), _MOVE, int(Result.COUNT_TOO_LOW)})
#: ... and for a client that is moving: "count too low" from a new host does not.
_USEFUL_MOVING = frozenset({int(Result.OK), _MOVE})
#: The planner's generator in the simulator: never drawn from (ordered SRV answers).
_NO_DRAWS = random.Random(0)


class StandInKey(SigningKey):
    """A host key that signs with 64 zero bytes: for the simulator only.

    It carries the real key's public half so that the host license (which names
    it) still checks; it holds no private key at all.
    """

    __slots__ = ()

    def __init__(self, public_key: bytes) -> None:  # no Ed25519 key: nothing to sign with
        self.public_key = public_key

    def sign(self, message: bytes) -> bytes:
        return _STAND_IN_SIGNATURE


@dataclass(frozen=True)
class HostDecision:
    """One decision, for :attr:`Simulation.trace` (the equality test)."""

    host: str  #: the host's name
    now: int  #: simulated Unix time
    cmid: bytes  #: the machine
    sku: bytes  #: its SKU
    vm: bool  #: its VM flag
    state: int  #: its license state (:class:`LicenseState`)
    minutes_left: int  #: minutes of grace or validity it reported
    result: int  #: the :class:`Result` the simulator used
    moved: bool = False  #: the grant's ticket asked the machine to move (rebalance)


class _Host:
    __slots__ = (
        "address", "clients", "core", "count_now", "down", "frame_at", "frames", "host_id", "i",
        "last", "license", "license_frame", "name", "real_key", "spec", "start", "stop", "told",
    )  # fmt: skip

    def __init__(self, i: int, spec: HostSpec, core: HostCore, real_key: SigningKey) -> None:
        self.i = i
        self.spec = spec
        self.name = spec.name
        self.address = HostAddress(f"{spec.name}.sim", DEFAULT_PORT)
        self.core = core
        self.real_key = real_key
        self.host_id = core.config.host_id
        self.license = core.license_bytes
        self.license_frame = core.decide_frame(encode(GetLicense()), now=0).frame
        self.start = 0
        self.stop: int | None = None
        self.down: list[tuple[int, int]] = []  #: [start, end) windows: outages, port blocks
        self.clients = 0  #: machines whose cached host this is
        #: per SKU, (now, count, result) of the last full decision for it
        self.last: dict[bytes, tuple[int, int, int]] = {}
        #: (now, count) of the last full decision: the count now (see _decide_many)
        self.count_now = (0, -1)
        #: per (SKU, result), the frame of the last full decision that gave it
        self.frames: dict[tuple[bytes, int], bytes] = {}
        #: per (SKU, edge), when that frame was made (a shortcut needs one of this instant)
        self.frame_at: dict[tuple[bytes, int], int] = {}
        #: machines (client indexes) this host's tickets asked to move
        self.told: set[int] = set()

    def running(self, t: int) -> bool:
        return self.start <= t and (self.stop is None or t < self.stop)

    def up(self, t: int) -> bool:
        return self.running(t) and not any(a <= t < b for a, b in self.down)


class _Pop:
    __slots__ = (
        "cut_until",
        "domain",
        "exchange_fail",
        "first",
        "gone",
        "i",
        "last",
        "latency",
        "loss",
        "office",
        "sku",
        "sku_bytes",
        "spec",
        "v4",
        "v6",
        "view",
        "ws",
    )  # fmt: skip

    def __init__(self, i: int, spec: Population, catalog: Catalog, cut_until: int | None) -> None:
        self.i = i
        self.spec = spec
        sku = next(s for s in catalog.skus if s.group == spec.sku_group)
        self.sku = sku.id
        self.sku_bytes = sku.id.bytes
        self.domain = spec.domain
        self.latency = spec.latency_s
        self.loss = spec.loss
        self.office = spec.hours == "office"
        self.v4 = spec.family in ("ipv4", "dual")
        self.v6 = spec.family in ("ipv6", "dual")
        self.cut_until = cut_until
        self.ws = "sim"
        #: one exchange takes longer than the client's exchange timeout: it never completes
        self.exchange_fail = spec.latency_s >= DEFAULT_EXCHANGE_SECONDS
        self.gone = False
        self.first = 0
        self.last = 0
        #: everything of the population that a planner path, a host decision or a
        #: transition's schedule depends on (with whether it is cut off at the time):
        #: populations that agree on it share planner trees
        self.view = (
            self.sku_bytes, self.domain, spec.caching, self.latency, self.loss, self.v4,
            self.v6, self.office,
        )  # fmt: skip

    def reaches(self, h: _Host, t: int) -> bool:
        if self.cut_until is not None and t < self.cut_until:
            return False
        fam = h.spec.family
        if fam == "ipv6" and not self.v6:
            return False
        if fam == "ipv4" and not self.v4:
            return False
        return h.up(t)


class _Node:
    """A point on a planner path: the step the planner asks for next, and where each
    answer leads. A leaf (``step`` is Finished) holds the machines' new states."""

    __slots__ = (
        "after", "bytes", "cached", "children", "failed", "host", "known_after", "log",
        "mono", "new", "planner", "settled", "step",
    )  # fmt: skip

    def __init__(self, log: tuple[Any, ...], step: Step, mono: float, host: int, nbytes: int):
        self.log = log
        self.step = step
        self.mono = mono
        self.host = host  #: the host the exchange that led here went to (-1: none)
        self.bytes = nbytes  #: frame bytes of that exchange, both directions
        self.failed = False  #: that exchange reached no host
        #: the planner in this node's state, until a child takes it over
        self.planner: AttemptPlanner | None = None
        self.children: dict[Any, _Node] = {}
        self.settled = False  #: a leaf whose cached host and licenses are worked out
        self.cached = -1
        #: hosts whose license the attempt fetched (added to each machine's known set)
        self.new: frozenset[int] = frozenset()
        #: known-set id before -> after, for the cohorts that reached this leaf
        self.known_after: dict[int, int] = {}
        #: id(machine before) -> (machine after, next tick), for machines that ended here
        self.after: dict[int, tuple[Machine, int]] = {}


#: The part of a client's state the simulator keeps outside the machine value (the
#: cached host and known licenses are the simulator's own columns).
_STATE = ClientState(vendor_key_id=bytes(8), cmid=uuid.UUID(int=0), created_at=0)


def transition(m: Machine, outcome: Outcome, now: int) -> Machine:
    """A machine after an attempt's outcome: the client's own ``apply_outcome`` (a
    verified ticket, an unsigned "count too low", or a failure)."""
    return apply_outcome(replace(_STATE, machine=m), outcome, now).machine


def transition_key(outcome: Outcome) -> tuple[Any, ...]:
    """What :func:`transition` reads of an outcome (``apply_outcome``'s machine part,
    for a client found through DNS): a verified ticket's validity, intervals and move
    hint (and the host, for a move: the machine remembers whom it leaves), the retry
    interval of an unsigned "count too low", or nothing for a failure. Outcomes with
    equal keys take a machine to the same state, whatever host or request they
    came from."""
    tk = outcome.ticket
    if tk is not None and outcome.reply is not None:
        host = str(outcome.host) if tk.move and outcome.host is not None else None
        return (
            "granted", tk.valid_until, outcome.valid_until, tk.activation_interval,
            tk.renewal_interval, tk.move, host,
        )  # fmt: skip
    if outcome.reply is not None:
        return ("counting", outcome.reply.activation_interval)
    return ("failed",)


@dataclass
class SimResult:
    """What a run recorded: daily samples, hourly requests, totals."""

    scenario: Scenario
    start_ts: int  #: Unix time of day 0
    host_names: list[str]
    population_names: list[str]
    days: list[float] = field(default_factory=list)  #: sample times, in days
    by_state: dict[str, list[int]] = field(default_factory=dict)  #: state -> machines per sample
    host_clients: list[list[int]] = field(default_factory=list)  #: [host][sample]
    host_count: list[list[int]] = field(default_factory=list)  #: [host][sample] (HostCore.count)
    hourly: list[list[int]] = field(default_factory=list)  #: [host][hour] requests answered+failed
    bytes_daily: list[int] = field(default_factory=list)  #: frame bytes per day
    connections_daily: list[int] = field(default_factory=list)  #: exchanges per day
    exchanges: int = 0  #: exchanges that reached a host (activation, renewal, license)
    failed: int = 0  #: exchanges that reached no host (down, blocked, lost, cut off)
    result_counts: list[int] = field(default_factory=lambda: [0] * 256)  #: replies by code
    distinct_paths: int = 0  #: planner paths driven (client cohorts x outcomes)
    full_decisions: int = 0  #: host decisions made by HostCore.decide_frame
    shortcut_decisions: int = 0  #: host decisions made by the counted-machine shortcut
    moves_told: int = 0  #: grants whose signed ticket asked the machine to move
    #: machines that had at least one exchange reach no host (a timeout, a blocked port)
    clients_failed_exchange: int = 0
    #: machines that had at least one attempt end without any host's answer
    clients_failed_attempt: int = 0
    #: machines some host's ticket asked to move (rebalance)
    clients_told: int = 0
    refused_daily: list[int] = field(default_factory=list)  #: replies other than a grant, by day
    @property
    def results(self) -> dict[str, int]:
        """Replies by result label."""
        return {Result(i).label: n for i, n in enumerate(self.result_counts) if n}

    cost_us: float = 0.0  #: measured host CPU per exchange (real HostCore, real Ed25519)
    wall_s: float = 0.0  #: wall time of the run
    notes: list[str] = field(default_factory=list)


class Simulation:
    """One run of a scenario. ``run()`` returns a :class:`SimResult`."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        catalog: Catalog | None = None,
        cost_us: float | None = None,
        trace: bool = False,
        progress: Callable[[float], None] | None = None,
        share_trees: bool = True,
    ) -> None:
        self.s = scenario
        #: cohorts share planner trees (alike populations; renewals with the same cached
        #: host whatever other licenses they know) and transitions across leaves (see
        #: _cohort and _after): exact, False only to test that it is
        self.share_trees = share_trees
        self.catalog = catalog or demo_catalog()
        self.rng = random.Random(scenario.seed)
        self.progress = progress
        self.tick_s = scenario.tick_minutes * 60
        self.ticks_per_day = DAY // self.tick_s
        self.ticks_per_hour = HOUR // self.tick_s
        self.t0 = scenario.start_ts
        self.n_ticks = math.ceil(scenario.days * DAY / self.tick_s)
        self.trace: list[HostDecision] | None = [] if trace else None
        seed = hashlib.sha256(f"volact-sim-vendor-{scenario.seed}".encode()).digest()
        self.vendor = SigningKey.from_seed(seed)
        self.verifier = Verifier(self.vendor.public_key, self.catalog)
        self.hosts = [self._make_host(i, h) for i, h in enumerate(scenario.hosts)]
        self.by_address = {h.address: h for h in self.hosts}
        self.by_target = {h.address.host: h for h in self.hosts}
        self.pops: list[_Pop] = []
        self._known_sets: list[frozenset[int]] = [frozenset()]
        self._known_ids: dict[frozenset[int], int] = {frozenset(): 0}
        self._intern: dict[Machine, Machine] = {}
        #: machines in each interned state, by id() of the state (hashing a Machine
        #: value costs 11 field hashes; ids of interned values are as good)
        self._mc: dict[int, int] = {}
        # per machine (client) columns
        self.c_pop: list[int] = []
        self.c_cmid: list[bytes] = []
        self.c_vm: list[bool] = []
        self.c_machine: list[Machine | None] = []
        self.c_cached: list[int] = []
        self.c_known: list[int] = []
        #: per machine: _SAW_FAILED_EXCHANGE, _SAW_FAILED_ATTEMPT
        self.c_flags = bytearray()
        self.buckets: dict[int, list[int]] = {}
        self._actions: dict[int, list[Any]] = {}
        self._leaves: dict[int, list[_Pop]] = {}
        self._setup_populations()
        self._setup_actions()
        hours = math.ceil(self.n_ticks / self.ticks_per_hour) + 1
        self.r = SimResult(
            scenario=scenario,
            start_ts=self.t0,
            host_names=[h.name for h in self.hosts],
            population_names=[p.spec.name for p in self.pops],
            by_state={s: [] for s in STATES},
            host_clients=[[] for _ in self.hosts],
            host_count=[[] for _ in self.hosts],
            hourly=[[0] * hours for _ in self.hosts],
            bytes_daily=[0] * (math.ceil(scenario.days) + 1),
            connections_daily=[0] * (math.ceil(scenario.days) + 1),
            refused_daily=[0] * (math.ceil(scenario.days) + 1),
            notes=[STAND_IN_NOTE, *scenario.notes],
        )
        self.r.cost_us = cost_us if cost_us is not None else self._measure_cost()
        self._tick_req = [0] * len(self.hosts)
        #: per population, which hosts it reaches in the current tick
        self._reach: dict[int, list[bool]] = {}
        #: (id of the machine state, transition_key, office hours) -> the state after, its
        #: next tick: the transitions of the current tick
        self._transitions: dict[tuple[Any, ...], tuple[Machine, int]] = {}
        self._tick_bytes = 0
        self._tick_conn = 0

    # ---- setup -------------------------------------------------------------------------

    def _make_host(self, i: int, spec: HostSpec) -> _Host:
        seed = hashlib.sha256(f"volact-sim-host-{self.s.seed}-{spec.name}".encode()).digest()
        key = SigningKey.from_seed(seed)
        host_id = seed[:8]
        cfg = HostConfig(
            host_id=host_id,
            fqdn=f"{spec.name}.sim",
            activation_interval=spec.activation_interval,
            renewal_interval=spec.renewal_interval,
            count_vms=spec.count_vms,
        )
        groups = tuple(g.name for g in self.catalog.groups)
        lic = HostLicense(
            self.vendor.key_id, host_id, key.public_key, seed[8:20], groups, self.t0 - DAY, None
        ).sign(self.vendor)
        core = HostCore(
            config=cfg,
            catalog=self.catalog,
            signing_key=StandInKey(key.public_key),
            host_license=lic,
            vendor_public_key=self.vendor.public_key,
        )
        h = _Host(i, spec, core, key)
        h.start = self._time(spec.start_day)
        h.stop = None if spec.stop_day is None else self._time(spec.stop_day)
        h.down = [(self._time(d), self._time(d + n)) for d, n in spec.outages]
        return h

    def _time(self, day: float) -> int:
        return self.t0 + round(day * DAY)

    def _tick_of(self, day: float) -> int:
        return math.ceil(round(day * DAY) / self.tick_s)

    def _setup_populations(self) -> None:
        rng = random.Random(self.s.seed + 1)
        for spec in self.s.populations:
            parts: list[tuple[Population, int | None]] = []
            cut = spec.unreachable
            n_cut = 0 if cut is None else round(spec.count * cut.share)
            if cut is not None and n_cut:
                parts.append(
                    (replace(spec, name=f"{spec.name} (cut off)", count=n_cut),
                     self._time(cut.until_day))
                )  # fmt: skip
            if spec.count - n_cut or not parts:
                parts.insert(0, (replace(spec, count=spec.count - n_cut), None))
            for sub, cut_until in parts:
                pop = _Pop(len(self.pops), sub, self.catalog, cut_until)
                self.pops.append(pop)
                self._add_clients(pop, rng)
                if sub.leave_day is not None:
                    self._leaves.setdefault(self._tick_of(sub.leave_day), []).append(pop)

    def _add_clients(self, pop: _Pop, rng: random.Random) -> None:
        spec = pop.spec
        first = self._tick_of(spec.arrive_day)
        last = max(first + 1, self._tick_of(spec.arrive_day + spec.ramp_days))
        # Arrivals on the hour: the report counts requests per hour, and machines that
        # act in the same tick in the same state are stepped together.
        tph = self.ticks_per_hour
        slots = [k for k in range(first, last) if k % tph == 0 and (not pop.office or self._on(k))]
        if not slots:
            slots = [self._defer(pop, first)]
        pop.first = len(self.c_pop)
        n = spec.count
        for j in range(n):
            c = len(self.c_pop)
            self.c_pop.append(pop.i)
            self.c_cmid.append(rng.randbytes(16))
            self.c_vm.append(rng.random() < spec.vm_share)
            self.c_machine.append(None)
            self.c_cached.append(-1)
            self.c_known.append(0)
            self.c_flags.append(0)
            tick = slots[j * len(slots) // n] if spec.ramp_days else first
            self.buckets.setdefault(tick, []).append(c)
        pop.last = len(self.c_pop)

    def _setup_actions(self) -> None:
        for a in self.s.actions:
            self._actions.setdefault(self._tick_of(a.day), []).append(a)
            if a.action == "rebalance" and a.days:
                stop = replace(a, day=a.day + a.days, action="rebalance_stop")
                self._actions.setdefault(self._tick_of(stop.day), []).append(stop)

    def _on(self, tick: int) -> bool:
        """Office hours: Monday to Friday, 08:00 to 18:00 (day 0's weekday from ``start``)."""
        t = self.t0 + tick * self.tick_s
        weekday = (t // DAY + 3) % 7  # 1970-01-01 was a Thursday (3)
        hour = (t % DAY) // HOUR
        return weekday < 5 and 8 <= hour < 18

    def _defer(self, pop: _Pop, tick: int) -> int:
        """The first tick at or after ``tick`` when the population's machines are on."""
        if not pop.office or self._on(tick):
            return tick
        t = self.t0 + tick * self.tick_s
        day = t // DAY
        for d in range(day, day + 8):
            open_t = d * DAY + 8 * HOUR
            if open_t >= t and (d + 3) % 7 < 5:
                return math.ceil((open_t - self.t0) / self.tick_s)
        raise AssertionError("no office hours within a week")

    def _measure_cost(self) -> float:
        """Host CPU per exchange: the real HostCore with the real Ed25519 key, timed here."""
        h = self.hosts[0]
        core = HostCore(
            config=h.core.config,
            catalog=self.catalog,
            signing_key=h.real_key,
            host_license=h.license,
            vendor_public_key=self.vendor.public_key,
        )
        sku = self.catalog.skus[0].id
        frames = [
            encode(ActivateRequest(sku, uuid.UUID(int=i + 1), bytes(16), self.t0,
                                   LicenseState.GRACE, 1000, False, "bench"))
            for i in range(300)
        ]  # fmt: skip
        best = math.inf
        for _ in range(3):
            t = time.perf_counter()
            for f in frames:
                core.decide_frame(f, now=self.t0, address="192.0.2.1")
            best = min(best, time.perf_counter() - t)
        return best / len(frames) * 1e6

    # ---- the run -----------------------------------------------------------------------

    def run(self) -> SimResult:
        started = time.perf_counter()
        for tick in range(self.n_ticks + 1):
            t = self.t0 + tick * self.tick_s
            if tick % self.ticks_per_day == 0 or tick == self.n_ticks:
                self._sample(t)
                if self.progress is not None:
                    self.progress(tick / self.n_ticks)
            if tick == self.n_ticks:
                break
            for a in self._actions.pop(tick, ()):
                self._apply(a, t)
            for pop in self._leaves.pop(tick, ()):
                self._leave(pop)
            bucket = self.buckets.pop(tick, None)
            if bucket:
                self._tick(tick, t, bucket)
        self.r.wall_s = time.perf_counter() - started
        flags = self.c_flags
        self.r.clients_failed_exchange = sum(1 for f in flags if f & _SAW_FAILED_EXCHANGE)
        self.r.clients_failed_attempt = sum(1 for f in flags if f & _SAW_FAILED_ATTEMPT)
        told: set[int] = set()
        for h in self.hosts:
            told |= h.told
        self.r.clients_told = len(told)
        return self.r

    def _apply(self, a: Any, t: int) -> None:
        targets = self.hosts if a.host == "*" else [h for h in self.hosts if h.name == a.host]
        for h in targets:
            if a.action == "add_host":
                h.start = t
                h.stop = None if h.stop is not None and h.stop <= t else h.stop
            elif a.action == "remove_host":
                h.stop = t
            elif a.action == "block_port":
                h.down.append((t, t + round(a.days * DAY)))
            elif a.action == "rebalance":
                # The host's own setting (`volact host rebalance --share`): HostCore
                # decides per grant, by CMID, whom its signed ticket asks to move.
                h.core.rebalance = Rebalance(share_from_percent(a.share), t)
            elif a.action == "rebalance_stop":  # `volact host rebalance --stop`
                h.core.rebalance = None
            elif a.action == "set_intervals":
                cfg = h.core.config
                h.core.config = replace(
                    cfg,
                    activation_interval=a.activation_interval or cfg.activation_interval,
                    renewal_interval=a.renewal_interval or cfg.renewal_interval,
                )

    def _leave(self, pop: _Pop) -> None:
        pop.gone = True
        for c in range(pop.first, pop.last):
            m = self.c_machine[c]
            if m is not None:
                self._mc[id(m)] -= 1
                if self.c_cached[c] >= 0:
                    self.hosts[self.c_cached[c]].clients -= 1

    def _sample(self, t: int) -> None:
        r = self.r
        r.days.append((t - self.t0) / DAY)
        counts = dict.fromkeys(STATES, 0)
        dead = []
        for m in self._intern.values():
            n = self._mc[id(m)]
            if n:
                counts[STATES[m.state(t)]] += n
            else:
                dead.append(m)
        for m in dead:  # values no machine holds any more
            del self._mc[id(m)]
            del self._intern[m]
        for s, n in counts.items():
            r.by_state[s].append(n)
        for h in self.hosts:
            r.host_clients[h.i].append(h.clients)
            r.host_count[h.i].append(h.core.count(t))

    def _tick(self, tick: int, t: int, bucket: list[int]) -> None:
        # Machines by what their attempt's planner sees (cached host, known host
        # licenses, population, the host that asked it to move), then by machine
        # state (what the transition sees).
        groups: dict[tuple[int, int, int, str | None], dict[int, list[int]]] = {}
        c_machine, c_cached, c_known, c_pop = (
            self.c_machine, self.c_cached, self.c_known, self.c_pop
        )  # fmt: skip
        pops = self.pops
        for c in bucket:
            p = c_pop[c]
            if pops[p].gone:
                continue
            m = c_machine[c]
            if m is None:
                m = c_machine[c] = self._install(p, t)
            key = (c_cached[c], c_known[c], p, m.moving_from)
            g = groups.get(key)
            if g is None:
                g = groups[key] = {}
            mk = id(m)
            same = g.get(mk)
            if same is None:
                g[mk] = [c]
            else:
                same.append(c)
        records: dict[str, list[SrvRecord]] = {}
        self._reach.clear()
        self._transitions.clear()
        trees = _Trees()
        for (cached, known, p, moving), by_machine in groups.items():
            self._cohort(tick, t, cached, known, pops[p], by_machine, records, trees, moving)
        tph = self.ticks_per_hour
        hour = tick // tph
        for h in self.hosts:
            n = self._tick_req[h.i]
            if n:
                self.r.hourly[h.i][hour] += n
                self._tick_req[h.i] = 0
        day = tick // self.ticks_per_day
        self.r.bytes_daily[day] += self._tick_bytes
        self.r.connections_daily[day] += self._tick_conn
        self._tick_bytes = self._tick_conn = 0

    def _install(self, p: int, t: int) -> Machine:
        """A machine arrives: its setup key (GVLK) is installed now (a real transition)."""
        m = self._canon(Machine().install(t, self.pops[p].sku, KeyKind.GVLK))
        self._mc[id(m)] += 1
        return m

    def _canon(self, m: Machine) -> Machine:
        got = self._intern.get(m)
        if got is None:
            self._intern[m] = got = m
            self._mc[id(m)] = 0
        return got

    def _known_id(self, known: frozenset[int]) -> int:
        k = self._known_ids.get(known)
        if k is None:
            k = self._known_ids[known] = len(self._known_sets)
            self._known_sets.append(known)
        return k

    # ---- one cohort: the planner once per path, the host once per machine -------------

    def _cohort(
        self, tick: int, t: int, cached: int, known: int, pop: _Pop,
        by_machine: dict[int, list[int]], records: dict[str, list[SrvRecord]],
        trees: _Trees, moving: str | None = None,
    ) -> None:  # fmt: skip
        c0 = next(iter(by_machine.values()))[0]
        m0 = self.c_machine[c0]
        assert m0 is not None
        # Drawn whether or not this cohort builds a tree, so that sharing trees changes
        # no other draw of the run (a test compares runs with and without).
        nonce = self.rng.randbytes(16)
        vm0, cmid0 = self.c_vm[c0], self.c_cmid[c0]
        view = (pop.view, pop.cut_until is not None and t < pop.cut_until)
        # Cohorts of populations with the same view and the same cached host, known
        # licenses and move see the same planner: they share a tree. And a cohort whose
        # first step is a question to its reachable cached host (a renewal) shares the
        # tree of an earlier one with the same cached host and view whatever other host
        # licenses it knows: on a path where that host answers usefully the planner
        # looks up no license but that host's (``AttemptPlanner._on_reply``), and the
        # leaf adds the licenses fetched to each machine's own set. Machines the cached
        # host does not settle go on in the tree of their full key (``own``).
        fkey = (cached, known, view, moving)
        skey = (cached, cached in self._known_sets[known], view, moving)
        share = self.share_trees
        own = trees.full.get(fkey) if share else None
        got = trees.hot.get(skey) if share else None
        hot: _Host | None
        if got is not None:
            tree, hot = got
        else:
            if own is None:
                own = _Tree(self, t, m0, cached, known, pop, vm0, cmid0, nonce, moving)
                trees.full[fkey] = own
            tree = own
            hot = self._hot(tree, pop, t)
            if hot is not None:
                trees.hot[skey] = (tree, hot)
        root = tree.root
        # Machines that reach no host at all (cut off by a firewall, or a link slower
        # than the exchange timeout) try every host in some order and fail: the order
        # changes nothing but which host misses a SYN, so the first machine's walk
        # stands for all of them (same leaf, same number of failed exchanges).
        blind = pop.exchange_fail or (pop.cut_until is not None and t < pop.cut_until)
        for cids in by_machine.values():
            m = self.c_machine[cids[0]]
            assert m is not None
            if blind:
                assert hot is None and own is tree
                path: list[_Node] = []
                leaf = self._walk(tree, root, cids[0], t, m, pop, records, path)
                for node in path:
                    self._account(node, len(cids) - 1)
                if any(node.failed for node in path):
                    for c in cids:
                        self.c_flags[c] |= _SAW_FAILED_EXCHANGE
                self._land(leaf, cids, m, tick, t, pop, cached, known)
                continue
            if hot is None:
                assert own is not None
                for c in cids:
                    leaf = self._walk(own, own.root, c, t, m, pop, records)
                    self._land(leaf, [c], m, tick, t, pop, cached, known)
                continue
            # The hot case (a renewal with the cached host): every machine asks the
            # same host; only the host's answer can split them.
            for result, group in self._decide_many(hot, cids, t, m, pop).items():
                child = root.children.get(result)
                if child is None:
                    child = tree.grow(root, result)
                self._account(child, len(group))
                if isinstance(child.step, Finished):
                    self._land(child, group, m, tick, t, pop, cached, known)
                    continue
                # The cached host did not settle them: the rest of the attempt may ask
                # other hosts, whose licenses this cohort knows or not.
                if own is None:
                    own = _Tree(self, t, m0, cached, known, pop, vm0, cmid0, nonce, moving)
                    trees.full[fkey] = own
                start = own.root.children.get(result)
                if start is None:
                    start = own.grow(own.root, result)
                for c in group:
                    leaf = self._walk(own, start, c, t, m, pop, records)
                    self._land(leaf, [c], m, tick, t, pop, cached, known)

    def _hot(self, tree: _Tree, pop: _Pop, t: int) -> _Host | None:
        """The host every machine of the tree asks first, when it surely answers."""
        step = tree.root.step
        if not isinstance(step, Exchange) or step.purpose != "activate":
            return None
        if pop.loss or pop.exchange_fail:
            return None
        h = self.by_address[step.address]
        return h if self._reachable(pop, t)[h.i] else None

    def _reachable(self, pop: _Pop, t: int) -> list[bool]:
        """Which hosts ``pop`` reaches at ``t``, by host index (fixed within a tick)."""
        got = self._reach.get(pop.i)
        if got is None:
            got = self._reach[pop.i] = [pop.reaches(h, t) for h in self.hosts]
        return got

    def _account(self, child: _Node, n: int) -> None:
        if child.host >= 0:
            self._tick_req[child.host] += n
            self._tick_bytes += child.bytes * n
            self._tick_conn += n
            self.r.exchanges += n
        elif child.failed:
            self.r.failed += n

    def _walk(
        self, tree: _Tree, node: _Node, c: int, t: int, m: Machine, pop: _Pop,
        records: dict[str, list[SrvRecord]], path: list[_Node] | None = None,
    ) -> _Node:  # fmt: skip
        """One machine's way from ``node`` to a leaf: its own draws, its own host decisions."""
        rng = self.rng
        reach = self._reachable(pop, t)
        fed: tuple[SrvRecord, ...] = ()
        decided: tuple[_Host, int] | None = None
        while True:
            step = node.step
            if isinstance(step, Finished):
                return node
            if isinstance(step, LookupSrv):
                recs = records.get(pop.domain)
                if recs is None:
                    recs = records[pop.domain] = self._srv(pop.domain, t)
                order = tuple(rfc2782_order(recs, rng))
                edge, fed, decided = self._srv_edge(order, node.mono, c, t, m, pop, tree.avoid)
            elif step.purpose == "license":
                edge = _LICENSE
            else:
                h = self.by_address[step.address]
                if decided is not None and decided[0] is h:
                    edge = decided[1]  # decided when the SRV answer was cut (see _srv_edge)
                    decided = None
                elif (
                    pop.exchange_fail
                    or (pop.loss and rng.random() < pop.loss)
                    or not reach[h.i]
                ):
                    edge = _FAIL
                else:
                    edge = self._decide_many(h, [c], t, m, pop).popitem()[0]
            child = node.children.get(edge)
            if child is None:
                child = tree.grow(node, edge, fed)
            self._account(child, 1)
            if child.failed:
                self.c_flags[c] |= _SAW_FAILED_EXCHANGE
            if path is not None:
                path.append(child)
            node = child

    def _srv_edge(
        self, order: tuple[SrvRecord, ...], mono: float, c: int, t: int, m: Machine, pop: _Pop,
        avoid: str | None = None,
    ) -> tuple[Any, tuple[SrvRecord, ...], tuple[_Host, int] | None]:  # fmt: skip
        """The tree edge for a machine's RFC 2782 order, the answer to feed, and a host
        decision already made.

        The planner asks the hosts in order until one answers OK or "count too low",
        and then stops: the hosts after that one cannot change its outcome. So when
        the first host this machine can reach will surely be asked (within the
        attempt's time bound) and answers usefully, the answer fed to the planner is
        the order cut after it, and machines whose orders agree that far share the
        path. Otherwise the whole order is the edge. Five hosts have 120 orders;
        without the cut, every order would be a planner path of its own.

        A moving machine's planner drops the host that asked (``avoid``, the SRV
        target) from the answer and asks it last, and "count too low" from another
        host does not end its attempt: the order is taken without that host, and
        only a grant is useful.
        """
        useful = _USEFUL
        if avoid is not None:
            order = tuple(r for r in order if r.target != avoid)
            useful = _USEFUL_MOVING
        if pop.loss or pop.exchange_fail:
            return order, order, None
        waited = mono + DNS_SECONDS
        reach = self._reachable(pop, t)
        k = 0
        while True:
            if k == len(order):
                return order, order, None
            h = self.by_target[order[k].target]
            if reach[h.i]:
                break
            waited += DEFAULT_EXCHANGE_SECONDS  # a host that does not answer times out
            k += 1
        if k >= MAX_HOSTS_PER_ATTEMPT or waited + pop.latency >= DEFAULT_ATTEMPT_SECONDS:
            return order, order, None
        result = self._decide_many(h, [c], t, m, pop).popitem()[0]
        if result in useful:
            return ("cut", order[: k + 1]), order[: k + 1], (h, result)
        return order, order, (h, result)

    def _land(
        self, leaf: _Node, group: list[int], m: Machine, tick: int, t: int, pop: _Pop,
        cached: int, known: int,
    ) -> None:  # fmt: skip
        """Machines of ``group`` (all in state ``m``) took the path to ``leaf``: give
        them the state after its outcome, and schedule them."""
        if not leaf.settled:
            self._settle_leaf(leaf, pop)
        final = leaf.step
        assert isinstance(final, Finished)
        if final.outcome.reply is None:  # no host granted or counted: a failed attempt
            for c in group:
                self.c_flags[c] |= _SAW_FAILED_ATTEMPT
        after = leaf.after.get(id(m))
        if after is None:
            after = leaf.after[id(m)] = self._after(leaf, m, tick, t, pop)
        new, nt = after
        n = len(group)
        mc = self._mc
        mc[id(m)] -= n
        mc[id(new)] += n
        c_machine = self.c_machine
        for c in group:
            c_machine[c] = new
        if leaf.cached != cached:
            c_cached = self.c_cached
            for c in group:
                c_cached[c] = leaf.cached
            if cached >= 0:
                self.hosts[cached].clients -= n
            if leaf.cached >= 0:
                self.hosts[leaf.cached].clients += n
        if leaf.new:
            now_known = leaf.known_after.get(known)
            if now_known is None:
                now_known = self._known_id(self._known_sets[known] | leaf.new)
                leaf.known_after[known] = now_known
            if now_known != known:
                c_known = self.c_known
                for c in group:
                    c_known[c] = now_known
        if nt < self.n_ticks:
            b = self.buckets.get(nt)
            if b is None:
                self.buckets[nt] = list(group)
            else:
                b.extend(group)

    def _settle_leaf(self, leaf: _Node, pop: _Pop) -> None:
        """What a leaf means for every machine that reaches it: cached host, licenses."""
        tree: _Tree = leaf.log[0]
        step = leaf.step
        assert isinstance(step, Finished)
        out = step.outcome
        cached = tree.cached
        if pop.spec.caching and out.answered and out.host is not None:
            cached = self.by_address[out.host].i
        leaf.cached = cached
        if out.new_licenses:
            ids = {h.host_id: h.i for h in self.hosts}
            leaf.new = frozenset(ids[k] for k in out.new_licenses)
        leaf.settled = True
        self.r.distinct_paths += 1

    def _after(self, leaf: _Node, m: Machine, tick: int, t: int, pop: _Pop) -> tuple[Machine, int]:
        """The real transition of ``m`` by the leaf's outcome, and its next tick.

        Leaves of other trees in this tick whose outcomes agree in what the transition
        reads (:func:`transition_key`) give the same: one transition serves them all.
        """
        step = leaf.step
        assert isinstance(step, Finished)
        key = (id(m), transition_key(step.outcome), pop.office)
        got = self._transitions.get(key) if self.share_trees else None
        if got is None:
            new = self._canon(transition(m, step.outcome, t))
            at = new.next_action_at(t)
            nt = self.n_ticks
            if at is not None:
                nt = max(tick + 1, math.ceil((at - self.t0) / self.tick_s))
            got = self._transitions[key] = (new, self._defer(pop, nt))  # office: the morning
        return got

    def _srv(self, domain: str, t: int) -> list[SrvRecord]:
        """The SRV answer for ``domain`` at ``t``: every running host that publishes
        there and is not draining."""
        return [
            SrvRecord(h.spec.priority, h.spec.weight, h.address.port, h.address.host)
            for h in self.hosts
            if domain in h.spec.domains and h.running(t)
            # a draining host withdraws its record (`rebalance --share 100`)
            and not (h.core.rebalance is not None and h.core.rebalance.draining)
        ]

    def _decide_many(
        self, h: _Host, cids: list[int], t: int, m: Machine, pop: _Pop
    ) -> dict[int, list[int]]:
        """The host's result for each machine's request at ``t``, machines by result.

        Each machine goes through the real ``HostCore`` unless the shortcut of the
        module docstring applies: the host counts it already (with the same VM flag),
        and a full decision for this SKU at this instant saw the count the host has
        now (only full decisions can change it).
        """
        out: dict[int, list[int]] = {}
        c_cmid, c_vm = self.c_cmid, self.c_vm
        touch = h.core.index.touch
        sku = pop.sku_bytes
        trace = self.trace
        entry = h.last.get(sku)
        same = entry is not None and entry[0] == t and h.count_now == (t, entry[1])
        result = entry[2] if entry is not None else -1
        group = out.setdefault(result, [])
        shortcut = 0
        # A rebalancing host asks some of the machines it grants to move, chosen by
        # CMID (the real `selects`): a grant's edge then depends on the machine too.
        rb = h.core.rebalance
        host_id = h.host_id
        frame_at = h.frame_at
        fast = trace is None and (rb is None or result != Result.OK)
        i, n = 0, len(cids)
        while i < n:
            c = cids[i]
            i += 1
            cmid = c_cmid[c]
            vm = c_vm[c]
            if same:
                edge = result
                if rb is not None and result == Result.OK and selects(cmid, host_id, rb.share):
                    edge = _MOVE
                _, old, was_vm = touch(cmid, t, vm)
                # (a move's frame must be of this instant too, or the full decision makes it)
                if old is not None and was_vm is vm and frame_at.get((sku, edge)) == t:
                    if edge == result:
                        group.append(c)
                    else:
                        out.setdefault(edge, []).append(c)
                    if edge == _MOVE:
                        h.told.add(c)
                    shortcut += 1
                    if trace is not None:
                        self._trace(h, t, cmid, m, pop, vm, result, edge == _MOVE)
                    if not fast:
                        continue
                    # The renewals' common case: while the next machines are counted
                    # ones too, each is one touch (same result, same frame, no move).
                    start = i
                    while i < n:
                        c = cids[i]
                        vm = c_vm[c]
                        _, old, was_vm = touch(c_cmid[c], t, vm)
                        if old is None or was_vm is not vm:
                            break
                        i += 1
                    group.extend(cids[start:i])
                    shortcut += i - start
                    if i == n:
                        break
                    c = cids[i]  # touched already: it is decided in full below
                    i += 1
                    cmid = c_cmid[c]
            result = self._full_decision(h, c, cmid, vm, t, m, pop, out)
            same = True
            group = out.setdefault(result, [])
            fast = trace is None and (rb is None or result != Result.OK)
        self.r.shortcut_decisions += shortcut
        counts = self.r.result_counts
        for res, g in list(out.items()):
            if g:
                if res == _MOVE:
                    counts[Result.OK] += len(g)
                    self.r.moves_told += len(g)
                else:
                    counts[res] += len(g)
                    if res != Result.OK:
                        self.r.refused_daily[(t - self.t0) // DAY] += len(g)
            else:
                del out[res]
        return out

    def _full_decision(
        self, h: _Host, c: int, cmid: bytes, vm: bool, t: int, m: Machine, pop: _Pop,
        out: dict[int, list[int]],
    ) -> int:  # fmt: skip
        """Machine ``c``'s request through the real ``HostCore``; its result."""
        sku = pop.sku_bytes
        req = ActivateRequest(
            pop.sku, uuid.UUID(bytes=cmid), self.rng.randbytes(16), t, m.state(t),
            m.minutes_left(t), vm, pop.ws, PROTOCOL_VERSION_MOVE,
        )  # fmt: skip
        d = h.core.decide_frame(encode(req), now=t, address="sim")
        assert d.record is not None
        result = d.record.result
        count = d.record.host_count
        moved = d.record.moved
        edge = _MOVE if moved else result
        h.last[sku] = (t, count, result)
        h.count_now = (t, count)
        h.frames[sku, edge] = d.frame
        h.frame_at[sku, edge] = t
        self.r.full_decisions += 1
        out.setdefault(edge, []).append(c)
        if moved:
            h.told.add(c)
        if self.trace is not None:
            self._trace(h, t, cmid, m, pop, vm, result, moved)
        return result

    def _trace(
        self, h: _Host, t: int, cmid: bytes, m: Machine, pop: _Pop, vm: bool, result: int,
        moved: bool = False,
    ) -> None:  # fmt: skip
        assert self.trace is not None
        self.trace.append(
            HostDecision(h.name, t, cmid, pop.sku_bytes, vm, int(m.state(t)),
                         m.minutes_left(t), result, moved)
        )  # fmt: skip


class _Trees:
    """The planner trees of one tick: by full key, and the renewal trees by cached host."""

    def __init__(self) -> None:
        #: (cached host, known licenses, population view, moving from) -> tree
        self.full: dict[tuple[Any, ...], _Tree] = {}
        #: (cached host, its license known, view, moving from) -> tree, its cached host
        self.hot: dict[tuple[Any, ...], tuple[_Tree, _Host]] = {}


class _Tree:
    """The planner paths of one cohort in one tick, grown as machines take new ones.

    Every node is reached by replaying its path into a fresh ``AttemptPlanner`` for
    the cohort's representative request: the real planner decides what comes next.
    """

    def __init__(
        self, sim: Simulation, t: int, m: Machine, cached: int, known: int, pop: _Pop,
        vm: bool, cmid: bytes, nonce: bytes, avoid: str | None = None,
    ) -> None:  # fmt: skip
        self.sim = sim
        #: the SRV target of the host whose ticket asked these machines to move
        self.avoid = None if avoid is None else HostAddress.parse(avoid).host
        self.t = t
        self.machine = m
        self.cached = cached
        self.known = known
        self.pop = pop
        self.request = ActivateRequest(
            pop.sku, uuid.UUID(bytes=cmid), nonce, t, m.state(t),
            m.minutes_left(t), vm, pop.ws, PROTOCOL_VERSION_MOVE,
        )  # fmt: skip
        hosts = sim.hosts
        self.config = DiscoveryConfig(
            label=SIM_LABEL,
            domain=pop.domain,
            caching=pop.spec.caching,
            cached_host=hosts[cached].address if cached >= 0 else None,
            avoid=None if avoid is None else HostAddress.parse(avoid),
        )
        self.licenses = {hosts[i].host_id: hosts[i].license for i in sim._known_sets[known]}
        self._live: AttemptPlanner
        self.root = _Node((self,), *self._replay(()), -1, 0)
        self.root.planner = self._live

    def _planner(self) -> AttemptPlanner:
        return AttemptPlanner(
            request=self.request,
            verifier=self.sim.verifier,
            config=self.config,
            licenses=self.licenses,
            rng=_NO_DRAWS,  # SRV answers come already ordered (see grow)
            started=0.0,
            time_limit=DEFAULT_ATTEMPT_SECONDS,
            exchange_timeout=DEFAULT_EXCHANGE_SECONDS,
        )

    @staticmethod
    def _feed(p: AttemptPlanner, action: tuple[Any, ...], mono: float) -> Step:
        kind, arg, cost = action
        mono += cost
        follow: Exchange | None = None
        if kind == "srv":
            p.srv_answer(arg)
        elif kind == "fail":
            p.exchange_failed(arg)
        else:
            follow = p.exchange_answer(arg, mono)
        return follow if follow is not None else p.next_step(mono)

    def _replay(self, path: tuple[Any, ...]) -> tuple[Step, float]:
        """A fresh planner fed ``path``: the step it asks for next, and its clock."""
        p = self._live = self._planner()
        mono = 0.0
        step = p.next_step(mono)
        for action in path:
            step = self._feed(p, action, mono)
            mono += action[2]
        return step, mono

    def grow(self, node: _Node, edge: Any, fed: tuple[SrvRecord, ...] = ()) -> _Node:
        """The child of ``node`` along ``edge``: the planner, fed that answer."""
        step = node.step
        pop = self.pop
        host = -1
        nbytes = 0
        failed = False
        action: tuple[Any, ...]
        if isinstance(step, LookupSrv):
            # The machine's own RFC 2782 draw, handed to the planner as an answer whose
            # priorities keep that order (the planner's own draw would be another one).
            recs = [SrvRecord(i, 0, r.port, r.target) for i, r in enumerate(fed)]
            action = ("srv", recs, DNS_SECONDS)
        else:
            assert isinstance(step, Exchange)
            h = self.sim.by_address[step.address]
            host = h.i
            if edge == _FAIL:
                host = -1
                failed = True
                action = ("fail", "timed out", step.timeout)
            elif edge == _LICENSE:
                nbytes = len(step.frame) + len(h.license_frame)
                action = ("answer", h.license_frame, pop.latency)
            else:
                frame = self._reply_for_representative(h, edge)
                nbytes = len(step.frame) + len(frame)
                action = ("answer", frame, pop.latency)
        path = (*node.log[1:], action)
        p = node.planner
        if p is not None:  # the first child takes the parent's planner over
            node.planner = None
            child_step = self._feed(p, action, node.mono)
            mono = node.mono + action[2]
        else:
            child_step, mono = self._replay(path)
            p = self._live
        child = _Node((self, *path), child_step, mono, host, nbytes)
        child.failed = failed
        child.planner = p
        node.children[edge] = child
        return child

    def _reply_for_representative(self, h: _Host, result: int) -> bytes:
        """The host's reply with ``result``, addressed to this tree's request.

        The frame is the one the host's last full decision with this result for this
        SKU produced (at this instant); a ticket in it is re-made for the
        representative's CMID and nonce and signed with the host's real Ed25519 key.
        """
        frame = h.frames[self.pop.sku_bytes, result]
        if result != Result.OK and result != _MOVE:
            return frame  # an unsigned refusal: the same bytes for every machine
        reply = decode(frame)
        assert isinstance(reply, ActivateReply) and reply.ticket is not None
        ticket, _, _ = ActivationTicket.decode(reply.ticket)
        mine = replace(ticket, cmid=self.request.cmid, nonce=self.request.nonce)
        return encode(replace(reply, ticket=mine.sign(h.real_key)))


__all__ = [
    "STAND_IN_NOTE",
    "STATES",
    "HostDecision",
    "SimResult",
    "Simulation",
    "StandInKey",
    "transition",
]
