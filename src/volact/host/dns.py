"""Publishing the host in DNS: the thin adapter between ``dns_settings`` and a DNS server.

It reads the host's DNS settings (``dns.json``) and the TSIG key file, asks the
server for the current SRV RRset, sends one TSIG-signed RFC 2136 update per domain
(built by :func:`volact.host.dns_settings.plan_publish`), turns every dnspython or
socket failure into an :class:`~volact.host.dns_settings.Outcome` with a precise
reason, and keeps the last outcome per domain in ``dns-state.json`` for
``volact host status``.

``publish_loop`` runs beside the activation server: it publishes at start, every
24 h after a success, and with exponential backoff after a failure. It must never
raise into the server nor stop it serving; it must never print or log the TSIG
secret. Policy (which records, when to retry) lives in ``dns_settings``, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.SRV
import dns.tsig
import dns.update

from volact.errors import ConfigurationError, VolactError
from volact.files import write_atomic
from volact.host.dns_settings import (
    DEFAULT_LABEL,
    Backoff,
    Change,
    DnsSettings,
    DomainState,
    FailureKind,
    Outcome,
    PublishDomain,
    Published,
    PublishSchedule,
    ServerAddress,
    SrvValue,
    TsigKey,
    UpdatePlan,
    check_label,
    normalize_name,
    parse_bind_key,
    plan_publish,
    plan_unpublish,
)
from volact.host.rebalance_file import load_rebalance

#: The settings file in the host home.
SETTINGS_FILE = "dns.json"
#: The last outcome per domain, written by the publisher, read by ``status``.
STATE_FILE = "dns-state.json"
#: Seconds to wait for one DNS server to answer one message.
QUERY_TIMEOUT = 5.0
#: A key file larger than this is not a key file.
MAX_KEY_FILE = 64 * 1024
#: Most SRV rdatas read back from the zone (a hostile answer is not trusted blindly).
MAX_EXISTING = 1024

EventSink = Callable[[str, str], None]


# --------------------------------------------------------------------------- files


def load_settings(home: Path) -> DnsSettings:
    """The host's DNS settings; defaults (publishing off) when none were set."""
    path = Path(home) / SETTINGS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DnsSettings()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not valid JSON: {exc}") from exc
    try:
        return DnsSettings.from_json(obj)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc


def save_settings(home: Path, settings: DnsSettings) -> None:
    """Write ``dns.json`` atomically (it holds no secret: only the key file's path)."""
    home = Path(home)
    if not home.is_dir():
        raise ConfigurationError(f"host home {home} does not exist; run `volact host init`")
    data = json.dumps(settings.to_json(), indent=2, sort_keys=True) + "\n"
    write_atomic(home / SETTINGS_FILE, data.encode())


def read_key_file(path: str | os.PathLike[str]) -> TsigKey:
    """The TSIG key in a BIND key file (``tsig-keygen`` output); errors never show the secret."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise ConfigurationError(f"TSIG key file {p} does not exist") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read TSIG key file {p}: {exc.strerror}") from exc
    if len(data) > MAX_KEY_FILE:
        raise ConfigurationError(f"TSIG key file {p} is larger than {MAX_KEY_FILE} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"TSIG key file {p} is not text") from None
    try:
        return parse_bind_key(text)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{p}: {exc}") from exc


def service_label(home: Path, settings: DnsSettings) -> str:
    """The SRV label: the settings' override, else the profile's ``dns_label``, else the default."""
    if settings.label is not None:
        return settings.label
    path = Path(home) / "profile.json"
    try:
        text = path.read_bytes()
    except OSError:
        return DEFAULT_LABEL
    from volact.profile import ProductProfile

    try:
        return check_label(ProductProfile.loads(text).dns_label)
    except VolactError:
        return DEFAULT_LABEL


def _read_state_file(home: Path) -> dict[str, Any]:
    try:
        obj = json.loads((Path(home) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _load_state(home: Path) -> dict[str, dict[str, Any]]:
    domains = _read_state_file(home).get("domains")
    if not isinstance(domains, dict):
        return {}
    return {k: v for k, v in domains.items() if isinstance(k, str) and isinstance(v, dict)}


def load_published(home: Path, domain: str) -> Published:
    """What ``dns-state.json`` says this host last published into ``domain``."""
    whole = _read_state_file(home)
    entry = _load_state(home).get(domain, {})
    fqdn = whole.get("fqdn")
    return Published.from_state(entry, zone=domain, fqdn=fqdn if isinstance(fqdn, str) else None)


def _save_state(
    home: Path,
    domain: str,
    state: DomainState,
    *,
    published: Published | None,
    action: str,
    fqdn: str,
) -> None:
    """Merge one domain's state into ``dns-state.json``; a failure here is not fatal.

    After a success, ``published`` is what the domain now holds of this host: the
    exact rdatas, so that the next publish or an ``unpublish`` deletes those and
    nothing else, even after the FQDN, the addresses or the service have changed.
    """
    states = _load_state(home)
    entry = {**states.get(domain, {}), **state.to_json()}
    if published is not None:
        entry["published"] = action == "publish"
        entry.update(published.to_json())
        entry.pop("addresses", None)  # the older format's record of A/AAAA
    states[domain] = entry
    data = json.dumps({"fqdn": fqdn, "domains": states}, indent=2, sort_keys=True) + "\n"
    with contextlib.suppress(ConfigurationError):
        write_atomic(Path(home) / STATE_FILE, data.encode())


def _published(outcome: Outcome, action: str, fqdn: str) -> Published | None:
    """What to record after ``outcome``: None after a failure (the zone is as it was)."""
    if not outcome.ok:
        return None
    if action == "publish":
        return Published(fqdn, outcome.records)
    return Published(None, outcome.records)  # what it could not remove, if anything


# --------------------------------------------------------------------------- wire


def _dns_key(key: TsigKey) -> dns.tsig.Key:
    return dns.tsig.Key(key.name, key.secret, key.algorithm)


def _server_ip(server: ServerAddress) -> str:
    try:
        ipaddress.ip_address(server.host)
        return server.host
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(server.host, server.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise OSError(f"cannot resolve DNS server name {server.host}: {exc}") from exc
    return str(infos[0][4][0])


def _existing_srv(
    owner: str, server: ServerAddress, key: TsigKey | None, timeout: float
) -> list[SrvValue]:
    """The SRV rdatas at ``owner`` on ``server`` (asked directly, over TCP)."""
    q = dns.message.make_query(owner + ".", dns.rdatatype.SRV)
    q.flags &= ~dns.flags.RD
    if key is not None:
        q.use_tsig(_dns_key(key))
    reply = dns.query.tcp(q, _server_ip(server), port=server.port, timeout=timeout)
    rcode = reply.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return []
    if rcode != dns.rcode.NOERROR:
        raise _RcodeError(rcode)
    wanted = dns.name.from_text(owner + ".")
    out: list[SrvValue] = []
    for rrset in reply.answer:
        if rrset.name != wanted or rrset.rdtype != dns.rdatatype.SRV:
            continue
        for rd in rrset:
            if isinstance(rd, dns.rdtypes.IN.SRV.SRV) and len(out) < MAX_EXISTING:
                target = rd.target.to_text(omit_final_dot=True).lower()
                out.append(SrvValue(rd.priority, rd.weight, rd.port, target))
    return out


class _RcodeError(Exception):
    def __init__(self, rcode: dns.rcode.Rcode) -> None:
        super().__init__(dns.rcode.to_text(rcode))
        self.rcode = rcode


def _update_message(plan: UpdatePlan, key: TsigKey | None) -> dns.update.UpdateMessage:
    msg = dns.update.UpdateMessage(plan.zone + ".")
    if key is not None:
        msg.use_tsig(_dns_key(key))
    for c in plan.deletes:
        name = dns.name.from_text(c.name + ".")
        msg.delete(name, c.rdtype, c.rdata)
    for c in plan.adds:
        msg.add(dns.name.from_text(c.name + "."), c.ttl, c.rdtype, c.rdata)
    return msg


def _send_update(
    plan: UpdatePlan, server: ServerAddress, key: TsigKey | None, timeout: float
) -> None:
    reply = dns.query.tcp(
        _update_message(plan, key), _server_ip(server), port=server.port, timeout=timeout
    )
    if reply.rcode() != dns.rcode.NOERROR:
        raise _RcodeError(reply.rcode())


def classify(exc: BaseException, *, key: TsigKey | None, timeout: float) -> Outcome:
    """A failure as an outcome (``domain`` filled in by the caller): kind and a precise reason."""
    kname = f"'{key.name}'" if key is not None else ""

    def out(kind: FailureKind, detail: str) -> Outcome:
        return Outcome("", False, detail, kind)

    if isinstance(exc, dns.tsig.PeerBadKey):
        return out(
            FailureKind.BADKEY,
            f"refused (NOTAUTH/BADKEY): the server does not know TSIG key {kname} "
            "with this algorithm",
        )
    if isinstance(exc, dns.tsig.PeerBadSignature):
        return out(
            FailureKind.BADSIG,
            f"refused (NOTAUTH/BADSIG): bad TSIG signature: the secret of key {kname} "
            "differs from the server's",
        )
    if isinstance(exc, dns.tsig.PeerBadTime):
        return out(
            FailureKind.BADTIME,
            "refused (NOTAUTH/BADTIME): this host's clock differs from the server's",
        )
    if isinstance(exc, dns.tsig.PeerError):
        return out(FailureKind.NOTAUTH, f"refused (NOTAUTH): TSIG error: {exc}")
    if isinstance(exc, _RcodeError):
        text = dns.rcode.to_text(exc.rcode)
        if exc.rcode == dns.rcode.REFUSED:
            why = (
                "the update was not signed (no TSIG key is set) and the server requires one"
                if key is None
                else f"the server's update policy does not let key {kname} change these records"
            )
            return out(FailureKind.REFUSED, f"refused (REFUSED): {why}")
        if exc.rcode == dns.rcode.NOTAUTH:
            return out(
                FailureKind.NOTAUTH,
                "refused (NOTAUTH): the server is not authoritative for this zone "
                "or did not accept the TSIG key",
            )
        if exc.rcode == dns.rcode.NOTZONE:
            return out(FailureKind.RCODE, "failed (NOTZONE): the server has no such zone")
        return out(FailureKind.RCODE, f"failed ({text})")
    if isinstance(exc, dns.exception.Timeout | TimeoutError):
        return out(FailureKind.TIMEOUT, f"timeout: no answer within {timeout:g} s")
    if isinstance(exc, ConnectionRefusedError):
        return out(FailureKind.UNREACHABLE, "connection refused: the DNS server is not running")
    if isinstance(exc, OSError):
        return out(FailureKind.UNREACHABLE, f"network error: {exc.strerror or exc}")
    if isinstance(exc, EOFError):
        return out(FailureKind.ERROR, "the server closed the connection without answering")
    if isinstance(exc, dns.tsig.BadSignature | dns.tsig.BadTime | dns.message.UnknownTSIGKey):
        return out(FailureKind.ERROR, "the server's reply failed TSIG verification")
    if isinstance(exc, ConfigurationError):
        return out(FailureKind.CONFIG, str(exc))
    if isinstance(exc, dns.exception.DNSException):
        return out(FailureKind.ERROR, f"malformed reply: {exc}")
    return out(FailureKind.ERROR, f"unexpected error: {type(exc).__name__}: {exc}")


_RETRY_NEXT_SERVER = (FailureKind.TIMEOUT, FailureKind.UNREACHABLE)


def _run(
    domain: str,
    settings: DnsSettings,
    make_plan: Callable[[list[SrvValue]], UpdatePlan],
    owner: str,
    timeout: float,
) -> Outcome:
    """Query the SRV RRset, build the plan, send it; try the next server on no answer."""
    try:
        key = read_key_file(settings.tsig_key_file) if settings.tsig_key_file else None
    except ConfigurationError as exc:
        return Outcome(domain, False, str(exc), FailureKind.CONFIG)
    if not settings.servers:
        return Outcome(
            domain, False, "no DNS server is set (volact host dns --server)", FailureKind.CONFIG
        )
    last: Outcome | None = None
    for server in settings.servers:
        try:
            plan = make_plan(_existing_srv(owner, server, key, timeout))
            _send_update(plan, server, key, timeout)
        except Exception as exc:  # every failure becomes an outcome, never an exception
            failed = classify(exc, key=key, timeout=timeout)
            last = Outcome(domain, False, failed.detail, failed.kind, str(server))
            if failed.kind in _RETRY_NEXT_SERVER:
                continue
            return last
        records = [Change(c.name, c.rdtype, c.rdata) for c in plan.adds]
        removed = list(plan.deletes)
        note = ""
        if plan.cleanup:
            try:
                _send_update(UpdatePlan(plan.zone, plan.cleanup, ()), server, key, timeout)
            except Exception as exc:  # kept in the state, to be removed next time
                reason = classify(exc, key=key, timeout=timeout).detail
                names = ", ".join(sorted({c.name for c in plan.cleanup}))
                note = f"; old records under {names} not removed: {reason}"
                records += [c for c in plan.cleanup if c not in records]
            else:
                removed += plan.cleanup
        detail = UpdatePlan(plan.zone, tuple(removed), plan.adds).summary() + note
        return Outcome(domain, True, detail, None, str(server), tuple(records))
    assert last is not None
    return last


def publish_domain(
    target: PublishDomain,
    settings: DnsSettings,
    *,
    label: str,
    fqdn: str,
    port: int,
    addresses: Sequence[str],
    previous: Published | None = None,
    timeout: float = QUERY_TIMEOUT,
) -> Outcome:
    """Replace this host's SRV (and A/AAAA) in one domain; the result, never an exception.

    ``previous`` is what this host published there before: those
    exact rdatas are deleted, whatever name they were published under
    (:func:`load_published` reads it).
    """
    name = normalize_name(fqdn, "FQDN")
    addrs = settings.addresses or tuple(addresses)

    def make_plan(existing: list[SrvValue]) -> UpdatePlan:
        return plan_publish(
            zone=target.domain,
            label=label,
            fqdn=name,
            port=port,
            priority=target.priority,
            weight=target.weight,
            ttl=settings.ttl,
            addresses=addrs,
            existing_srv=existing,
            previous=previous,
        )

    return _run(target.domain, settings, make_plan, f"{label}.{target.domain}", timeout)


def unpublish_domain(
    target: PublishDomain,
    settings: DnsSettings,
    *,
    label: str,
    fqdn: str,
    previous: Published | None = None,
    timeout: float = QUERY_TIMEOUT,
) -> Outcome:
    """Remove this host's own SRV rdata and exactly the rdatas ``previous`` holds."""
    name = normalize_name(fqdn, "FQDN")

    def make_plan(existing: list[SrvValue]) -> UpdatePlan:
        return plan_unpublish(
            zone=target.domain, label=label, fqdn=name, existing_srv=existing, previous=previous
        )

    return _run(target.domain, settings, make_plan, f"{label}.{target.domain}", timeout)


# --------------------------------------------------------------------------- drivers


def _safe_event(record_event: EventSink, kind: str, message: str) -> None:
    # The event store failing must not stop publishing, nor the server.
    with contextlib.suppress(Exception):
        record_event(kind, message)


def _record(
    home: Path,
    outcome: Outcome,
    now: int,
    *,
    action: str,
    backoff: Backoff,
    fqdn: str,
) -> None:
    old = _load_state(home).get(outcome.domain, {})
    prior = old.get("failures", 0)
    failures = 0 if outcome.ok else (prior if isinstance(prior, int) else 0) + 1
    last_ok = old.get("last_ok")
    state = DomainState(
        outcome.domain,
        next_attempt=now + backoff.delay(failures),
        failures=failures,
        last_attempt=now,
        last_ok=now if outcome.ok else (last_ok if isinstance(last_ok, int) else None),
        last_error=None if outcome.ok else outcome.detail,
    )
    published = _published(outcome, action, fqdn)
    _save_state(home, outcome.domain, state, published=published, action=action, fqdn=fqdn)


def run_once(
    home: Path,
    *,
    action: str,
    fqdn: str,
    port: int,
    addresses: Sequence[str],
    record_event: EventSink | None = None,
    now: Callable[[], float] = time.time,
    timeout: float = QUERY_TIMEOUT,
) -> list[Outcome]:
    """Publish (``action="publish"``) or unpublish in every domain once, now.

    Used by ``volact host dns publish|unpublish``. Works whether or not publishing is
    enabled (enabling is about the service's schedule); needs a server to be set.
    Unpublishing removes what ``dns-state.json`` says was published (``addresses``
    are not used then: the service may listen elsewhere by now).
    """
    if action not in ("publish", "unpublish"):
        raise ValueError(action)
    settings = load_settings(home)
    if not settings.configured:
        raise ConfigurationError(
            "no DNS server is set; run `volact host dns --home DIR --server ADDR[:PORT]`"
        )
    name = settings.fqdn or fqdn
    label = service_label(home, settings)
    backoff = Backoff.of(settings)
    outcomes: list[Outcome] = []
    for target in settings.targets(name):
        before = load_published(home, target.domain)
        if action == "publish":
            outcome = publish_domain(
                target,
                settings,
                label=label,
                fqdn=name,
                port=port,
                addresses=addresses,
                previous=before,
                timeout=timeout,
            )
        else:
            outcome = unpublish_domain(
                target, settings, label=label, fqdn=name, previous=before, timeout=timeout
            )
        _record(home, outcome, int(now()), action=action, backoff=backoff, fqdn=name)
        if record_event is not None:
            kind = f"dns_{action}_{'ok' if outcome.ok else 'failed'}"
            _safe_event(record_event, kind, outcome.message())
        outcomes.append(outcome)
    return outcomes


def withdraw_srv(
    home: Path,
    *,
    fqdn: str,
    record_event: EventSink | None = None,
    timeout: float = QUERY_TIMEOUT,
) -> list[Outcome]:
    """Remove this host's SRV record from every domain, keeping its A/AAAA (a drain).

    New clients stop finding the host; clients that cached its name still reach
    it and are asked, in their ticket, to move. ``dns-state.json`` is left as it
    is, so a later ``unpublish`` still removes the addresses published before,
    and a later ``publish`` puts the SRV back.
    """
    settings = load_settings(home)
    if not settings.configured:
        raise ConfigurationError(
            "no DNS server is set; run `volact host dns --home DIR --server ADDR[:PORT]`"
        )
    name = settings.fqdn or fqdn
    label = service_label(home, settings)
    outcomes: list[Outcome] = []
    for target in settings.targets(name):
        outcome = unpublish_domain(target, settings, label=label, fqdn=name, timeout=timeout)
        if record_event is not None:
            kind = f"dns_withdraw_{'ok' if outcome.ok else 'failed'}"
            _safe_event(record_event, kind, outcome.message())
        outcomes.append(outcome)
    return outcomes


async def publish_loop(
    home: Path,
    *,
    fqdn: str,
    port: int,
    addresses: Sequence[str],
    record_event: Callable[[str, str], None],
    stop: asyncio.Event,
    clock: Callable[[], float] = time.time,
    timeout: float = QUERY_TIMEOUT,
) -> None:
    """Publish at start and every 24 h until ``stop`` is set; never raises.

    ``record_event(kind, message)`` records a host event, e.g.
    ``("dns_publish_ok", "corp.example: SRV 0 0 1688 host1.corp.example")`` or
    ``("dns_publish_failed", "corp.example: refused (NOTAUTH/BADKEY): ...; retry in 60 s")``.
    Returns at once when DNS publishing is not configured or is disabled. Settings are
    read once, at start: a change takes effect when the service restarts.
    """
    try:
        settings = load_settings(home)
        if not settings.enabled or not settings.configured:
            return
        name = settings.fqdn or normalize_name(fqdn, "FQDN")
        label = service_label(home, settings)
        targets = {t.domain: t for t in settings.targets(name)}
        if not targets:
            raise ConfigurationError(
                f"no domain to publish in: {name} has no parent domain; "
                "set one with `volact host dns --domain DOMAIN` or --publish-domain"
            )
    except Exception as exc:  # a bad dns.json must not stop the host serving
        _safe_event(record_event, "dns_publish_failed", f"settings: {exc}")
        return
    schedule = PublishSchedule(targets, Backoff.of(settings), int(clock()))
    listen = tuple(addresses)
    while not stop.is_set():
        if _draining(home):
            # A draining host does not publish itself: new clients must not find it
            # (`volact host rebalance --share 100` withdrew its records).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=DRAIN_CHECK_SECONDS)
            continue
        for domain in schedule.due(int(clock())):
            if stop.is_set():
                return
            outcome = await asyncio.to_thread(
                publish_domain,
                targets[domain],
                settings,
                label=label,
                fqdn=name,
                port=port,
                addresses=listen,
                previous=load_published(home, domain),
                timeout=timeout,
            )
            now = int(clock())
            state = schedule.record(outcome, now)
            _save_state(
                home,
                domain,
                state,
                published=_published(outcome, "publish", name),
                action="publish",
                fqdn=name,
            )
            if outcome.ok:
                _safe_event(record_event, "dns_publish_ok", outcome.message())
            else:
                retry = state.next_attempt - now
                _safe_event(
                    record_event, "dns_publish_failed", f"{outcome.message()}; retry in {retry} s"
                )
        wake = schedule.next_wakeup()
        delay = 3600.0 if wake is None else max(0.0, wake - clock())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)


#: How often a draining host looks whether the drain has ended (to publish again).
DRAIN_CHECK_SECONDS = 30.0


def _draining(home: Path) -> bool:
    try:
        rb = load_rebalance(home)
    except VolactError:
        return False
    return rb is not None and rb.draining


def _fqdn_from_config(home: Path) -> str | None:
    try:
        from volact.host.home import load_config

        return load_config(home).fqdn
    except Exception:
        return None


def status(home: Path) -> dict[str, Any]:
    """DNS publishing settings and last outcome, for ``volact host status``.

    Never includes the TSIG secret; a key file that cannot be read shows its error.
    """
    home = Path(home)
    try:
        settings = load_settings(home)
    except ConfigurationError as exc:
        return {"enabled": False, "configured": False, "error": str(exc)}
    last = _read_state_file(home).get("fqdn")
    fqdn = settings.fqdn or _fqdn_from_config(home) or (last if isinstance(last, str) else None)
    key: dict[str, Any] | None = None
    if settings.tsig_key_file:
        key = {"file": settings.tsig_key_file}
        try:
            k = read_key_file(settings.tsig_key_file)
            key.update(name=k.name, algorithm=k.algorithm)
        except ConfigurationError as exc:
            key["error"] = str(exc)
    states = _load_state(home)
    domains: list[dict[str, Any]] = []
    targets: Iterable[PublishDomain] = ()
    with contextlib.suppress(ConfigurationError):
        targets = settings.targets(fqdn or "localhost")
    for t in targets:
        st = states.get(t.domain, {})
        domains.append(
            {
                **t.to_json(),
                "published": st.get("published"),
                "last_attempt": st.get("last_attempt"),
                "last_ok": st.get("last_ok"),
                "last_error": st.get("last_error"),
                "failures": st.get("failures", 0),
                "next_attempt": st.get("next_attempt"),
            }
        )
    return {
        "enabled": settings.enabled,
        "configured": settings.configured,
        "fqdn": fqdn,
        "label": service_label(home, settings),
        "servers": [str(s) for s in settings.servers],
        "tsig_key": key,
        "ttl": settings.ttl,
        "addresses": list(settings.addresses),
        "retry_initial": settings.retry_initial,
        "retry_max": settings.retry_max,
        "republish_interval": settings.republish_interval,
        "domains": domains,
    }
