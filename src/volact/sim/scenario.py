"""Fleet scenarios for the simulator: hosts, client populations, administrator actions.

A :class:`Scenario` is plain validated values, read from a TOML file
(:func:`load_scenario`, documented with a commented example in
``docs/simulator.md``) or built in (:func:`simple_fleet`, :func:`case_study`).
Every number is checked here, once, so the engine can trust it; a bad file is a
:class:`~volact.errors.ConfigurationError` that names the key. No I/O except
:func:`load_scenario` reading the one file it is given.
"""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from volact.catalog import demo_catalog
from volact.client.srv import valid_host_name
from volact.errors import ConfigurationError
from volact.wire import (
    DEFAULT_ACTIVATION_INTERVAL,
    DEFAULT_RENEWAL_INTERVAL,
    MAX_INTERVAL,
    MIN_INTERVAL,
)

FAMILIES = ("ipv4", "ipv6", "dual")
HOURS = ("always", "office")
ACTIONS = ("add_host", "remove_host", "block_port", "set_intervals", "rebalance")
#: Simulated days are bounded: a run must end (and fit in memory).
MAX_DAYS = 3650
MAX_CLIENTS = 2_000_000
DEFAULT_DOMAIN = "corp.example"
#: Monday 5 January 2026, 00:00 UTC: day 0 of every scenario unless it says otherwise.
DEFAULT_START = "2026-01-05"


@dataclass(frozen=True)
class HostSpec:
    """One key management host."""

    name: str  #: DNS name label of the host (``NAME.sim`` in SRV targets)
    start_day: float = 0.0  #: when it starts serving and publishing
    stop_day: float | None = None  #: when it stops and unpublishes (None: never)
    family: str = "dual"  #: ``ipv4``, ``ipv6`` or ``dual``: who can reach it
    priority: int = 0  #: SRV priority (lower is tried first)
    weight: int = 0  #: SRV weight within its priority (0/0 is the host's default)
    domains: tuple[str, ...] = (DEFAULT_DOMAIN,)  #: the DNS domains it publishes in
    capacity: float = 0.0  #: exchanges per second it may take (0: from the measured cost)
    activation_interval: int = DEFAULT_ACTIVATION_INTERVAL  #: minutes, sent to clients
    renewal_interval: int = DEFAULT_RENEWAL_INTERVAL  #: minutes, sent to clients
    count_vms: bool = True  #: whether virtual machines count toward the threshold
    #: (first day, days) windows when the host is down (it stays in DNS)
    outages: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Unreachable:
    """A share of a population that cannot reach any host until a day (a firewall rule)."""

    share: float  #: fraction of the population, 0..1
    until_day: float  #: the day the path is opened


@dataclass(frozen=True)
class Population:
    """A group of client machines that behave alike."""

    name: str  #: shown in the report
    count: int  #: machines
    sku_group: str = "desktop"  #: product group of the SKU they install (threshold from it)
    vm_share: float = 0.0  #: fraction that are virtual machines
    arrive_day: float = 0.0  #: when the first of them installs its setup key
    ramp_days: float = 0.0  #: spread of arrivals after ``arrive_day`` (0: all at once)
    hours: str = "always"  #: ``office`` (Mon-Fri 08:00-18:00 UTC) or ``always`` on
    latency_s: float = 0.02  #: seconds one exchange takes on their link
    loss: float = 0.0  #: fraction of exchanges that time out anyway (a flaky link)
    family: str = "dual"  #: ``ipv4``, ``ipv6`` or ``dual``
    domain: str = DEFAULT_DOMAIN  #: the DNS domain they look up SRV records in
    caching: bool = True  #: host caching (go back to the host that answered)
    unreachable: Unreachable | None = None  #: a share cut off until some day
    leave_day: float | None = None  #: when they leave the fleet (a lab torn down)


@dataclass(frozen=True)
class Action:
    """An administrator action on a given day."""

    day: float  #: when
    action: str  #: one of :data:`ACTIONS`
    host: str = ""  #: the host it applies to (``*``: every host for set_intervals)
    days: float = 0.0  #: block_port: for how long; rebalance: stopped after (0: never)
    activation_interval: int | None = None  #: set_intervals: new retry interval (minutes)
    renewal_interval: int | None = None  #: set_intervals: new renewal interval (minutes)
    share: float = 0.0  #: rebalance: percent of the host's clients asked to move


@dataclass(frozen=True)
class Scenario:
    """Everything one simulation run needs."""

    name: str  #: shown in the report
    days: float  #: simulated days
    hosts: tuple[HostSpec, ...]  #: the key management hosts
    populations: tuple[Population, ...]  #: the client machines
    actions: tuple[Action, ...] = ()  #: administrator actions, by day
    seed: int = 1  #: for every random draw (SRV choice, arrivals, loss)
    tick_minutes: int = 15  #: the simulated clock's step (all intervals are >= 15 min)
    start: str = DEFAULT_START  #: the calendar date of day 0 (UTC), for office hours
    description: str = ""  #: what the scenario shows, in words
    notes: tuple[str, ...] = ()  #: choices made where the source was silent

    def __post_init__(self) -> None:
        _check(self)

    @property
    def clients(self) -> int:
        return sum(p.count for p in self.populations)

    @property
    def start_ts(self) -> int:
        """Unix time of day 0."""
        d = dt.date.fromisoformat(self.start)
        return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp())

    def with_overrides(
        self, *, days: float | None = None, seed: int | None = None
    ) -> Scenario:
        return replace(
            self,
            days=self.days if days is None else days,
            seed=self.seed if seed is None else seed,
        )


# ---- validation ---------------------------------------------------------------------


def _fail(what: str, why: str) -> ConfigurationError:
    return ConfigurationError(f"scenario: {what}: {why}")


def _check(s: Scenario) -> None:
    if not s.name or len(s.name) > 100 or not s.name.isprintable():
        raise _fail("name", "1..100 printable characters")
    if not 0 < s.days <= MAX_DAYS:
        raise _fail("days", f"must be more than 0 and at most {MAX_DAYS}, not {s.days}")
    if s.tick_minutes < 1 or s.tick_minutes > MIN_INTERVAL or MIN_INTERVAL % s.tick_minutes:
        raise _fail("tick_minutes", "must divide 15 (1, 3, 5 or 15)")
    try:
        dt.date.fromisoformat(s.start)
    except ValueError:
        raise _fail("start", f"{s.start!r} is not a date (YYYY-MM-DD)") from None
    if not s.hosts:
        raise _fail("hosts", "at least one host is needed")
    if not s.populations:
        raise _fail("clients", "at least one client population is needed")
    if s.clients > MAX_CLIENTS:
        raise _fail("clients", f"at most {MAX_CLIENTS:,} machines, not {s.clients:,}")
    names = set()
    groups = {g.name for g in demo_catalog().groups}
    for h in s.hosts:
        what = f"host {h.name!r}"
        if not valid_host_name(h.name) or "." in h.name:
            raise _fail(what, "a host name is one DNS label (letters, digits, '-')")
        if h.name in names:
            raise _fail(what, "defined twice")
        names.add(h.name)
        _check_days(what, h.start_day, "start_day")
        if h.stop_day is not None and h.stop_day <= h.start_day:
            raise _fail(what, "stop_day must come after start_day")
        if h.family not in FAMILIES:
            raise _fail(what, f"family must be one of {', '.join(FAMILIES)}")
        if not (0 <= h.priority <= 0xFFFF and 0 <= h.weight <= 0xFFFF):
            raise _fail(what, "priority and weight are 0..65535")
        if not h.domains:
            raise _fail(what, "publishes in no domain")
        for d in h.domains:
            if not valid_host_name(d):
                raise _fail(what, f"{d!r} is not a domain name")
        if not 0 <= h.capacity <= 1e9 or math.isnan(h.capacity):
            raise _fail(what, "capacity is exchanges per second, 0 or more")
        for iv, key in ((h.activation_interval, "activation_interval"),
                        (h.renewal_interval, "renewal_interval")):  # fmt: skip
            _check_interval(what, key, iv)
        for day, days in h.outages:
            _check_days(what, day, "outage day")
            if not 0 < days <= MAX_DAYS:
                raise _fail(what, "an outage lasts more than 0 days")
    pops = set()
    for p in s.populations:
        what = f"clients {p.name!r}"
        if not p.name or len(p.name) > 64 or not p.name.isprintable():
            raise _fail(what, "a population needs a name of 1..64 printable characters")
        if p.name in pops:
            raise _fail(what, "defined twice")
        pops.add(p.name)
        if not 0 <= p.count <= MAX_CLIENTS:
            raise _fail(what, f"count must be 0..{MAX_CLIENTS}")
        if p.sku_group not in groups:
            raise _fail(what, f"sku_group must be one of {', '.join(sorted(groups))}")
        for v, key in ((p.vm_share, "vm_share"), (p.loss, "loss")):
            if not 0 <= v <= 1:
                raise _fail(what, f"{key} is a fraction, 0..1")
        _check_days(what, p.arrive_day, "arrive_day")
        if not 0 <= p.ramp_days <= MAX_DAYS:
            raise _fail(what, "ramp_days must be 0 or more")
        if p.hours not in HOURS:
            raise _fail(what, f"hours must be one of {', '.join(HOURS)}")
        if not 0 <= p.latency_s <= 600 or math.isnan(p.latency_s):
            raise _fail(what, "latency_s must be 0..600 seconds")
        if p.family not in FAMILIES:
            raise _fail(what, f"family must be one of {', '.join(FAMILIES)}")
        if not valid_host_name(p.domain):
            raise _fail(what, f"{p.domain!r} is not a domain name")
        if p.unreachable is not None:
            if not 0 <= p.unreachable.share <= 1:
                raise _fail(what, "unreachable.share is a fraction, 0..1")
            _check_days(what, p.unreachable.until_day, "unreachable.until_day")
        if p.leave_day is not None and p.leave_day <= p.arrive_day:
            raise _fail(what, "leave_day must come after arrive_day")
    for a in s.actions:
        what = f"action {a.action!r} on day {a.day:g}"
        if a.action not in ACTIONS:
            raise _fail(what, f"unknown action; known: {', '.join(ACTIONS)}")
        _check_days(what, a.day, "day")
        if a.host != "*" and a.host not in names:
            raise _fail(what, f"names no defined host ({a.host!r})")
        if a.host == "*" and a.action != "set_intervals":
            raise _fail(what, "'*' (every host) is only for set_intervals")
        if a.action == "block_port" and not 0 < a.days <= MAX_DAYS:
            raise _fail(what, "block_port needs days > 0")
        if a.action == "set_intervals":
            if a.activation_interval is None and a.renewal_interval is None:
                raise _fail(what, "set_intervals needs activation_interval or renewal_interval")
            for maybe, key in ((a.activation_interval, "activation_interval"),
                               (a.renewal_interval, "renewal_interval")):  # fmt: skip
                if maybe is not None:
                    _check_interval(what, key, maybe)
        if a.action == "rebalance" and not 0 < a.share <= 100:
            raise _fail(what, "rebalance needs share, a percent in (0, 100]")
        if a.action == "rebalance" and not 0 <= a.days <= MAX_DAYS:
            raise _fail(what, "rebalance days (when it is stopped) must be >= 0")


def _check_days(what: str, day: float, key: str) -> None:
    if not 0 <= day <= MAX_DAYS or math.isnan(day):
        raise _fail(what, f"{key} must be 0..{MAX_DAYS}, not {day}")


def _check_interval(what: str, key: str, minutes: int) -> None:
    if not MIN_INTERVAL <= minutes <= MAX_INTERVAL:
        raise _fail(
            what,
            f"{key} must be {MIN_INTERVAL}..{MAX_INTERVAL} minutes (volact refuses shorter "
            f"or longer intervals), not {minutes}",
        )


# ---- TOML -----------------------------------------------------------------------------


class _Table:
    """One TOML table read key by key, so that a wrong type or an unknown key is named."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise _fail(where, "must be a table")
        self.data: dict[str, Any] = data
        self.where = where
        self.used: set[str] = set()

    def _get(self, key: str, types: tuple[type, ...], default: Any) -> Any:
        self.used.add(key)
        if key not in self.data:
            return default
        v = self.data[key]
        if isinstance(v, bool) and bool not in types:
            raise _fail(self.where, f"{key} must be {types[0].__name__}, not a boolean")
        if not isinstance(v, types):
            raise _fail(self.where, f"{key} must be {types[0].__name__}, not {type(v).__name__}")
        return v

    def text(self, key: str, default: Any) -> Any:
        return self._get(key, (str,), default)

    def integer(self, key: str, default: Any) -> Any:
        return self._get(key, (int,), default)

    def number(self, key: str, default: Any) -> Any:
        v = self._get(key, (float, int), default)
        return None if v is None else float(v)

    def flag(self, key: str, default: bool) -> bool:
        return bool(self._get(key, (bool,), default))

    def items(self, key: str) -> list[Any]:
        return list(self._get(key, (list,), []))

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise _fail(self.where, f"unknown key(s): {', '.join(extra)}")


def parse_scenario(text: str, *, source: str = "scenario") -> Scenario:
    """A scenario from TOML text (see ``docs/simulator.md``)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{source}: not valid TOML: {exc}") from None
    top = _Table(data, source)
    sim = _Table(top._get("simulation", (dict,), {}), "[simulation]")
    hosts = [_host(_Table(h, f"[[hosts]] #{i + 1}")) for i, h in enumerate(top.items("hosts"))]
    pops = [_pop(_Table(p, f"[[clients]] #{i + 1}")) for i, p in enumerate(top.items("clients"))]
    actions = [
        _action(_Table(a, f"[[actions]] #{i + 1}")) for i, a in enumerate(top.items("actions"))
    ]
    top.done()
    s = Scenario(
        name=sim.text("name", Path(source).stem),
        description=sim.text("description", ""),
        days=sim.number("days", 180.0),
        seed=sim.integer("seed", 1),
        tick_minutes=sim.integer("tick_minutes", 15),
        start=sim.text("start", DEFAULT_START),
        hosts=tuple(hosts),
        populations=tuple(pops),
        actions=tuple(sorted(actions, key=lambda a: a.day)),
    )
    sim.done()
    return s


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read scenario {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"scenario {path} is not UTF-8 text") from None
    return parse_scenario(text, source=str(path))


def _host(t: _Table) -> HostSpec:
    outages = []
    for o in t.items("outages"):
        ot = _Table(o, f"{t.where} outage")
        outages.append((ot.number("day", 0.0), ot.number("days", 1.0)))
        ot.done()
    h = HostSpec(
        name=t.text("name", ""),
        start_day=t.number("start_day", 0.0),
        stop_day=t.number("stop_day", None),
        family=t.text("family", "dual"),
        priority=t.integer("priority", 0),
        weight=t.integer("weight", 0),
        domains=tuple(t.items("domains") or [DEFAULT_DOMAIN]),
        capacity=t.number("capacity", 0.0),
        activation_interval=t.integer("activation_interval", DEFAULT_ACTIVATION_INTERVAL),
        renewal_interval=t.integer("renewal_interval", DEFAULT_RENEWAL_INTERVAL),
        count_vms=t.flag("count_vms", True),
        outages=tuple(outages),
    )
    if not all(isinstance(d, str) for d in h.domains):
        raise _fail(t.where, "domains is a list of names")
    t.done()
    return h


def _pop(t: _Table) -> Population:
    unreachable = None
    raw = t._get("unreachable", (dict,), None)
    if raw is not None:
        ut = _Table(raw, f"{t.where} unreachable")
        unreachable = Unreachable(ut.number("share", 0.0), ut.number("until_day", 0.0))
        ut.done()
    p = Population(
        name=t.text("name", ""),
        count=t.integer("count", 0),
        sku_group=t.text("sku_group", "desktop"),
        vm_share=t.number("vm_share", 0.0),
        arrive_day=t.number("arrive_day", 0.0),
        ramp_days=t.number("ramp_days", 0.0),
        hours=t.text("hours", "always"),
        latency_s=t.number("latency_s", 0.02),
        loss=t.number("loss", 0.0),
        family=t.text("family", "dual"),
        domain=t.text("domain", DEFAULT_DOMAIN),
        caching=t.flag("caching", True),
        unreachable=unreachable,
        leave_day=t.number("leave_day", None),
    )
    t.done()
    return p


def _action(t: _Table) -> Action:
    a = Action(
        day=t.number("day", 0.0),
        action=t.text("action", ""),
        host=t.text("host", ""),
        days=t.number("days", 0.0),
        activation_interval=t.integer("activation_interval", None),
        renewal_interval=t.integer("renewal_interval", None),
        share=t.number("share", 0.0),
    )
    t.done()
    return a


# ---- built-in scenarios -----------------------------------------------------------------


def simple_fleet(*, clients: int, hosts: int, days: float, seed: int = 1) -> Scenario:
    """One desktop group (threshold 25), ``hosts`` hosts starting together, equal weights.

    The machines install their setup key over the first day, always on.
    """
    if not 1 <= hosts <= 64:
        raise ConfigurationError("--hosts must be 1..64")
    return Scenario(
        name=f"{clients:,} clients, {hosts} host{'s' if hosts > 1 else ''}, {days:g} days",
        description="A simple fleet: one desktop group, hosts starting together, equal weights.",
        days=days,
        seed=seed,
        hosts=tuple(HostSpec(f"kms-{i + 1}", weight=100) for i in range(hosts)),
        populations=(Population("desktops", clients, ramp_days=1.0 if clients > 1 else 0.0),),
        notes=(
            "Machines install their setup key spread evenly over day 0 and stay on.",
            "Every host starts on day 0 with SRV priority 0 and weight 100.",
        ),
    )


CASE_STUDY_NOTES = (
    "Phase lengths and dates are not in the case study except Phase 1 (three weeks); "
    "the simulator chooses: Phase 2 from day 21, Phase 3 from day 60, Phase 4 from day 90, "
    "Phase 5 from day 150, operations on two hosts from day 240, end on day 300.",
    "Phase 1 renewed every minute; volact refuses intervals under 15 minutes, so the lab "
    "runs with 15 minutes for its first week (672 times the 7-day load, not 10,080).",
    "Phase 4's Windows Server 2003 host 'served 25 %': it gets SRV weight 150 against "
    "100 for the others, which gives it about a quarter of the clients.",
    "Phase 5: 6,000 clients in the untrusted forest are cut off by IPsec until day 170; "
    "500 clients at the remote site use their own host over a VPN where one exchange "
    "takes 2 s and 5 % of exchanges time out; 3,000 Phase 5 clients are IPv4-only.",
    "Arrivals are spread over office hours; desktops are on Mon-Fri 08:00-18:00 UTC "
    "and 10 % are virtual machines (the case study does not say).",
)


def case_study() -> Scenario:
    """The seed's five phases and the operations that followed (see CASE_STUDY_NOTES)."""
    lab = "lab.example"
    test = "test.example"
    remote = "remote.example"
    hosts = (
        HostSpec("lab-1", 0, 21, domains=(lab,), renewal_interval=15),
        HostSpec("lab-2", 0, 21, domains=(lab,), renewal_interval=15),
        HostSpec("pilot-1", 21, 60, domains=(test,)),
        HostSpec("pilot-2", 21, 60, domains=(test,)),
        HostSpec("core-1", 60, 240, weight=100, domains=(DEFAULT_DOMAIN, test)),
        HostSpec("core-2", 60, 240, weight=100, domains=(DEFAULT_DOMAIN, test)),
        HostSpec("core-3", 90, 240, weight=150, domains=(DEFAULT_DOMAIN, test)),
        HostSpec("core-4", 90, 240, weight=100, family="ipv6", domains=(DEFAULT_DOMAIN, test)),
        HostSpec("core-5", 150, 240, weight=100, domains=(DEFAULT_DOMAIN, test)),
        HostSpec("remote-1", 150, domains=(remote,)),
        HostSpec("lic-1", 235, weight=100, domains=(DEFAULT_DOMAIN, test)),
        HostSpec("lic-2", 235, weight=100, domains=(DEFAULT_DOMAIN, test)),
    )
    def office(name: str, count: int, arrive: float, ramp: float, **kw: Any) -> Population:
        return Population(
            name, count, arrive_day=arrive, ramp_days=ramp, hours="office", vm_share=0.1, **kw
        )

    pops = (
        Population("lab", 100, ramp_days=1, leave_day=21, domain=lab),
        office("pilot", 3000, 21, 14, domain=test),
        office("core (phase 3)", 4000, 60, 15),
        office("core (phase 4)", 23000, 90, 30),
        office("core (phase 5)", 50500, 150, 30),
        office("core IPv4-only", 3000, 150, 30, family="ipv4"),
        office("untrusted forest", 6000, 150, 10, unreachable=Unreachable(1.0, 170)),
        office("remote site (VPN)", 500, 150, 5, latency_s=2.0, loss=0.05, domain=remote),
    )
    actions = (Action(7, "set_intervals", host="*", renewal_interval=DEFAULT_RENEWAL_INTERVAL),)
    return Scenario(
        name="case-study",
        description=(
            "The seed's rollout: a lab (2 hosts, 100 clients, 3 weeks), a pilot (3,000), "
            "two new hosts on the core network where counting starts over (7,000), four "
            "hosts with an IPv6-only one and one serving a quarter (30,000), a fifth host "
            "and 60,000 more (90,000) with a remote site and a firewalled forest, then "
            "operations on two licensing hosts."
        ),
        days=300,
        hosts=hosts,
        populations=pops,
        actions=actions,
        notes=CASE_STUDY_NOTES,
    )


BUILTIN = {"case-study": case_study}


__all__ = [
    "ACTIONS",
    "BUILTIN",
    "Action",
    "HostSpec",
    "Population",
    "Scenario",
    "Unreachable",
    "case_study",
    "load_scenario",
    "parse_scenario",
    "simple_fleet",
]
