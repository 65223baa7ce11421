"""Finding hosts in DNS: SRV lookups and A/AAAA resolution, a thin dnspython adapter.

``lookup_srv`` asks for ``_volact._tcp.<domain>`` SRV records and ``resolve_host``
turns a record's target into addresses. With ``nameservers`` the lookups go only to
those servers (``dns.resolver.Resolver(configure=False)``, their ports included);
without, to the machine's resolver configuration.

Answers come from the network and are not trusted blindly: records with port 0,
the "no service" target ``.`` and targets that are not host names are dropped, and
of the rest only the :data:`MAX_RECORDS` best by priority are kept; addresses that
do not name one host (wildcard, broadcast, multicast, reserved) are dropped. The
choice among the records (RFC 2782), caching and failover are the planner's, not
this module's. Lookups return an empty list when the name does not exist or has no
such records, and raise :class:`volact.errors.TransportError` when no nameserver
answers.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.rdtypes.IN.SRV
import dns.resolver

from volact.addresses import ip_literal, is_unicast, valid_host_name
from volact.client.srv import HostAddress, SrvRecord
from volact.errors import ConfigurationError, TransportError
from volact.resolving import connect_ip

#: Most SRV records taken from one answer (a hostile answer set is cut here, keeping
#: the lowest priority numbers: those are the ones RFC 2782 says to try first).
MAX_RECORDS = 64
#: Most addresses taken for one target, per family.
MAX_ADDRESSES = 16

_valid_target = valid_host_name


def _nameserver_ip(ns: HostAddress) -> str:
    # A nameserver given by name is resolved once with the system resolver.
    try:
        return connect_ip(ns.host, ns.port, socktype=socket.SOCK_DGRAM)
    except OSError as exc:
        raise ConfigurationError(f"nameserver {ns.host!r} does not resolve: {exc}") from exc


def _configure(
    resolver: dns.resolver.BaseResolver,
    nameservers: Sequence[HostAddress] | None,
    timeout: float,
) -> None:
    if nameservers:
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(_nameserver_ip(ns), ns.port) for ns in nameservers
        ]
    resolver.timeout = timeout
    resolver.lifetime = timeout
    # Cached answers would hide a changed weight; the planner decides about caching.
    resolver.cache = None


def _resolver(nameservers: Sequence[HostAddress] | None, timeout: float) -> dns.resolver.Resolver:
    try:
        r = dns.resolver.Resolver(configure=not nameservers)
    except dns.resolver.NoResolverConfiguration as exc:
        raise TransportError(
            f"no DNS resolver configured on this machine ({exc}); give --nameserver"
        ) from exc
    _configure(r, nameservers, timeout)
    return r


def _async_resolver(
    nameservers: Sequence[HostAddress] | None, timeout: float
) -> dns.asyncresolver.Resolver:
    try:
        r = dns.asyncresolver.Resolver(configure=not nameservers)
    except dns.resolver.NoResolverConfiguration as exc:
        raise TransportError(
            f"no DNS resolver configured on this machine ({exc}); give --nameserver"
        ) from exc
    _configure(r, nameservers, timeout)
    return r


def _transport_error(name: str, rdtype: str, exc: BaseException) -> TransportError:
    if isinstance(exc, dns.resolver.LifetimeTimeout | dns.exception.Timeout):
        return TransportError(f"{name} {rdtype}: no DNS server answered in time")
    if isinstance(exc, dns.resolver.NoNameservers):
        return TransportError(f"{name} {rdtype}: every DNS server failed or refused to answer")
    return TransportError(f"{name} {rdtype}: DNS lookup failed: {exc}")


def _srv_from_answer(rdatas: Iterable[object]) -> list[SrvRecord]:
    out: list[SrvRecord] = []
    seen: set[SrvRecord] = set()
    for rd in rdatas:
        if not isinstance(rd, dns.rdtypes.IN.SRV.SRV):
            continue
        if rd.port == 0 or rd.target == dns.name.root:
            continue  # port 0 is no service; "." says the service is not offered here
        target = rd.target.to_text(omit_final_dot=True).lower()
        if not _valid_target(target):
            continue
        rec = SrvRecord(rd.priority, rd.weight, rd.port, target)
        if rec not in seen:
            seen.add(rec)
            out.append(rec)
    # A DNS message bounds the answer (64 KiB), so sorting all of it is cheap; cutting
    # before sorting would let a long answer push out the records to try first.
    out.sort(key=lambda r: r.priority)
    return out[:MAX_RECORDS]


def _addresses(rdatas: Iterable[object], family: int) -> list[str]:
    out: list[str] = []
    for rd in rdatas:
        if len(out) >= MAX_ADDRESSES:
            break
        ip = ip_literal(str(getattr(rd, "address", "")))
        if ip is None:
            continue
        if ip.version == family and is_unicast(ip) and str(ip) not in out:
            out.append(str(ip))
    return out


_NO_RECORDS = (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer)


def _check_name(name: str) -> str:
    try:
        dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise ConfigurationError(f"{name!r} is not a DNS name: {exc}") from exc
    return name if name.endswith(".") else name + "."


def lookup_srv(
    name: str, *, nameservers: Sequence[HostAddress] | None = None, timeout: float = 3.0
) -> list[SrvRecord]:
    """SRV records at ``name`` (e.g. ``_volact._tcp.corp.example``)."""
    qname = _check_name(name)
    try:
        answer = _resolver(nameservers, timeout).resolve(qname, "SRV", search=False)
    except _NO_RECORDS:
        return []
    except dns.exception.DNSException as exc:
        raise _transport_error(name, "SRV", exc) from exc
    return _srv_from_answer(answer)


async def lookup_srv_async(
    name: str, *, nameservers: Sequence[HostAddress] | None = None, timeout: float = 3.0
) -> list[SrvRecord]:
    """:func:`lookup_srv` for asyncio."""
    qname = _check_name(name)
    try:
        answer = await _async_resolver(nameservers, timeout).resolve(qname, "SRV", search=False)
    except _NO_RECORDS:
        return []
    except dns.exception.DNSException as exc:
        raise _transport_error(name, "SRV", exc) from exc
    return _srv_from_answer(answer)


def _literal(target: str) -> str | None:
    ip = ip_literal(target.strip("[]"))
    return None if ip is None else str(ip)


def resolve_host(
    target: str, *, nameservers: Sequence[HostAddress] | None = None, timeout: float = 3.0
) -> list[str]:
    """IPv6 and IPv4 addresses of ``target`` (IP literals come back as they are)."""
    literal = _literal(target)
    if literal is not None:
        return [literal]
    qname = _check_name(target)
    resolver = _resolver(nameservers, timeout)
    out: list[str] = []
    failures: list[BaseException] = []
    for rdtype, family in (("AAAA", 6), ("A", 4)):
        try:
            out += _addresses(resolver.resolve(qname, rdtype, search=False), family)
        except _NO_RECORDS:
            continue
        except dns.exception.DNSException as exc:
            failures.append(exc)
    if not out and len(failures) == 2:
        raise _transport_error(target, "A/AAAA", failures[0]) from failures[0]
    return out


async def resolve_host_async(
    target: str, *, nameservers: Sequence[HostAddress] | None = None, timeout: float = 3.0
) -> list[str]:
    """:func:`resolve_host` for asyncio."""
    literal = _literal(target)
    if literal is not None:
        return [literal]
    qname = _check_name(target)
    resolver = _async_resolver(nameservers, timeout)
    out: list[str] = []
    failures: list[BaseException] = []
    for rdtype, family in (("AAAA", 6), ("A", 4)):
        try:
            out += _addresses(await resolver.resolve(qname, rdtype, search=False), family)
        except _NO_RECORDS:
            continue
        except dns.exception.DNSException as exc:
            failures.append(exc)
    if not out and len(failures) == 2:
        raise _transport_error(target, "A/AAAA", failures[0]) from failures[0]
    return out


def search_domains() -> list[str]:
    """The machine's DNS search domains (from the system resolver configuration)."""
    try:
        r = dns.resolver.Resolver(configure=True)
    except dns.exception.DNSException:
        return []
    names = list(r.search) or ([r.domain] if r.domain != dns.name.root else [])
    out: list[str] = []
    for n in names:
        text = n.to_text(omit_final_dot=True).lower()
        if text and text not in out and _valid_target(text):
            out.append(text)
    return out
