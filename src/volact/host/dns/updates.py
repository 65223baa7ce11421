"""One RFC 2136 update to one DNS server: read the SRV RRset, send the plan, classify.

The thin dnspython adapter: it asks the server for the current SRV rdatas, sends
one TSIG-signed update per domain (the plan is :mod:`volact.host.dns.plans`'s),
and turns every dnspython or socket failure into an
:class:`~volact.host.dns.outcomes.Outcome` with a precise reason, never an
exception. No policy here, and never the TSIG secret in any output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.SRV
import dns.tsig
import dns.update

from volact.addresses import normalize_name
from volact.errors import ConfigurationError, NameOwned
from volact.host.dns.files import read_key_file
from volact.host.dns.outcomes import FailureKind, Outcome
from volact.host.dns.ownership import Marker, owners
from volact.host.dns.plans import (
    Change,
    Ownership,
    Published,
    SrvValue,
    UpdatePlan,
    plan_publish,
    plan_unpublish,
)
from volact.host.dns.servers import QUERY_TIMEOUT, ServerAddress
from volact.host.dns.settings import DnsSettings, PublishDomain
from volact.host.dns.tsig import TsigKey
from volact.resolving import connect_ip

#: Most SRV rdatas read back from the zone (a hostile answer is not trusted blindly).
MAX_EXISTING = 1024


def _dns_key(key: TsigKey) -> dns.tsig.Key:
    return dns.tsig.Key(key.name, key.secret, key.algorithm)


def _server_ip(server: ServerAddress) -> str:
    try:
        return connect_ip(server.host, server.port)
    except OSError as exc:
        raise OSError(f"cannot resolve DNS server name {server.host}: {exc}") from exc


def _ask(
    owner: str, rdtype: dns.rdatatype.RdataType, server: ServerAddress,
    key: TsigKey | None, timeout: float,
) -> list[dns.rdata.Rdata]:
    """The rdatas of type ``rdtype`` at ``owner`` on ``server`` (asked directly, over TCP)."""
    q = dns.message.make_query(owner + ".", rdtype)
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
    return [
        rd for rrset in reply.answer if rrset.name == wanted and rrset.rdtype == rdtype
        for rd in rrset
    ]  # fmt: skip


def _existing_srv(
    owner: str, server: ServerAddress, key: TsigKey | None, timeout: float
) -> list[SrvValue]:
    """The SRV rdatas at ``owner`` (at most :data:`MAX_EXISTING`)."""
    out: list[SrvValue] = []
    for rd in _ask(owner, dns.rdatatype.SRV, server, key, timeout):
        if isinstance(rd, dns.rdtypes.IN.SRV.SRV) and len(out) < MAX_EXISTING:
            target = rd.target.to_text(omit_final_dot=True).lower()
            out.append(SrvValue(rd.priority, rd.weight, rd.port, target))
    return out


def _existing_txt(
    owner: str, server: ServerAddress, key: TsigKey | None, timeout: float
) -> tuple[tuple[str, ...], tuple[Marker, ...]]:
    """The TXT RRset at ``owner`` (presentation form, all of it: the prerequisite) and
    the volact markers in it."""
    rdatas = [
        rd for rd in _ask(owner, dns.rdatatype.TXT, server, key, timeout)
        if isinstance(rd, dns.rdtypes.ANY.TXT.TXT)
    ]  # fmt: skip
    if len(rdatas) > MAX_EXISTING:
        raise _TooMany()
    markers = (Marker.from_strings(rd.strings) for rd in rdatas)
    return tuple(rd.to_text() for rd in rdatas), tuple(m for m in markers if m is not None)


class _TooMany(Exception):
    """More TXT rdatas than a prerequisite can carry: refuse rather than guess."""


class _RcodeError(Exception):
    def __init__(self, rcode: dns.rcode.Rcode) -> None:
        super().__init__(dns.rcode.to_text(rcode))
        self.rcode = rcode


def _update_message(plan: UpdatePlan, key: TsigKey | None) -> dns.update.UpdateMessage:
    msg = dns.update.UpdateMessage(plan.zone + ".")
    if key is not None:
        msg.use_tsig(_dns_key(key))
    if plan.expect_txt is not None:
        # Compare before changing: the update applies only if the markers are exactly
        # what the plan was made from (RFC 2136 section 2.4.2 and 2.4.3).
        if plan.marker_owner is None:
            raise ConfigurationError("an update plan with a prerequisite names no SRV owner")
        owner = f"{plan.marker_owner}."
        if plan.expect_txt:
            msg.present(owner, "TXT", *plan.expect_txt)
        else:
            msg.absent(owner, "TXT")
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
    if isinstance(exc, NameOwned):
        return out(FailureKind.OWNED, f"refused (owned by host {exc.owner}): {exc}")
    if isinstance(exc, _TooMany):
        return out(
            FailureKind.ERROR,
            f"more than {MAX_EXISTING} TXT records at the service name; not publishing",
        )
    if isinstance(exc, _RcodeError):
        text = dns.rcode.to_text(exc.rcode)
        if exc.rcode in (dns.rcode.NXRRSET, dns.rcode.YXRRSET):
            return out(
                FailureKind.RCODE,
                f"failed ({text}): the ownership records changed while this host was "
                "publishing (another host published at the same moment); nothing was "
                "changed, and the next attempt reads them again",
            )
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


#: Times one server is asked again when the markers changed between reading and
#: updating (another host published into the zone at the same moment).
RACE_ATTEMPTS = 5


def _apply(
    make_plan: Callable[[list[SrvValue], Ownership], UpdatePlan],
    owner: str,
    server: ServerAddress,
    key: TsigKey | None,
    timeout: float,
    host_id: str,
) -> UpdatePlan:
    """Read, plan, send; read and plan again when the prerequisite failed.

    The prerequisite covers the whole TXT RRset at the SRV name, so two hosts
    publishing different names at once also conflict: the loser reads the winner's
    marker and tries again at once; a real contest for one name then ends in a
    refusal (the name is owned), never in both hosts' records being overwritten.
    """
    attempts = RACE_ATTEMPTS
    while True:
        txt, markers = _existing_txt(owner, server, key, timeout)
        srv = _existing_srv(owner, server, key, timeout)
        plan = make_plan(srv, Ownership(host_id, markers, txt))
        try:
            _send_update(plan, server, key, timeout)
        except _RcodeError as exc:
            attempts -= 1
            if exc.rcode not in (dns.rcode.NXRRSET, dns.rcode.YXRRSET) or attempts == 0:
                raise
        else:
            return plan


def _run(
    domain: str,
    settings: DnsSettings,
    make_plan: Callable[[list[SrvValue], Ownership], UpdatePlan],
    owner: str,
    timeout: float,
    host_id: str,
) -> Outcome:
    """Read the markers and the SRV RRset, build the plan, send it with the markers as
    its prerequisite; try the next server on no answer."""
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
            plan = _apply(make_plan, owner, server, key, timeout, host_id)
        except Exception as exc:  # every failure becomes an outcome, never an exception
            failed = classify(exc, key=key, timeout=timeout)
            last = Outcome(domain, False, failed.detail, failed.kind, str(server))
            if failed.kind in _RETRY_NEXT_SERVER:
                continue
            return last
        # Markers are found again by host id; dns-state.json keeps SRV, A and AAAA.
        records = [Change(c.name, c.rdtype, c.rdata) for c in plan.adds if c.rdtype != "TXT"]
        removed = list(plan.deletes)
        note = ""
        if plan.cleanup:
            try:
                _send_update(UpdatePlan(plan.zone, plan.cleanup, ()), server, key, timeout)
            except Exception as exc:  # kept in the state, to be removed next time
                reason = classify(exc, key=key, timeout=timeout).detail
                names = ", ".join(sorted({c.name for c in plan.cleanup}))
                note = f"; old records under {names} not removed: {reason}"
                records += [c for c in plan.cleanup if c not in records and c.rdtype != "TXT"]
            else:
                removed += plan.cleanup
        summary = UpdatePlan(
            plan.zone, tuple(removed), plan.adds, left=plan.left, taken_from=plan.taken_from
        ).summary()
        detail = summary + note
        return Outcome(
            domain, True, detail, None, str(server), tuple(records), plan.taken_from
        )
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
    host_id: str,
    previous: Published | None = None,
    take_over: bool = False,
    timeout: float = QUERY_TIMEOUT,
) -> Outcome:
    """Replace this host's SRV (and A/AAAA) in one domain; the result, never an exception.

    ``previous`` is what this host published there before: those
    exact rdatas are deleted, whatever name they were published under
    (:func:`load_published` reads it), unless another host id owns that name now.
    ``host_id`` (hex) goes in the ownership marker; a name another host id owns is
    refused (:attr:`FailureKind.OWNED`) unless ``take_over``.
    """
    name = normalize_name(fqdn, "FQDN")
    addrs = settings.addresses or tuple(addresses)

    def make_plan(existing: list[SrvValue], ownership: Ownership) -> UpdatePlan:
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
            ownership=ownership,
            take_over=take_over,
        )

    owner = f"{label}.{target.domain}"
    return _run(target.domain, settings, make_plan, owner, timeout, host_id)


def unpublish_domain(
    target: PublishDomain,
    settings: DnsSettings,
    *,
    label: str,
    fqdn: str,
    host_id: str,
    previous: Published | None = None,
    timeout: float = QUERY_TIMEOUT,
) -> Outcome:
    """Remove this host's own SRV rdata, its markers and exactly the rdatas ``previous``
    holds, leaving whatever another host id owns now."""
    name = normalize_name(fqdn, "FQDN")

    def make_plan(existing: list[SrvValue], ownership: Ownership) -> UpdatePlan:
        return plan_unpublish(
            zone=target.domain,
            label=label,
            fqdn=name,
            existing_srv=existing,
            previous=previous,
            ownership=ownership,
        )

    owner = f"{label}.{target.domain}"
    return _run(target.domain, settings, make_plan, owner, timeout, host_id)


def read_srv(
    domain: str, settings: DnsSettings, *, label: str, timeout: float = QUERY_TIMEOUT
) -> tuple[list[tuple[SrvValue, tuple[str, ...]]], str | None]:
    """What ``label.domain`` holds now on the first DNS server that answers: each SRV
    record with the host ids whose volact markers claim its target, or why nothing
    could be read (never an exception). Reads only; for the console's fleet view."""
    try:
        key = read_key_file(settings.tsig_key_file) if settings.tsig_key_file else None
    except ConfigurationError as exc:
        return [], str(exc)
    owner = f"{label}.{domain}"
    error = "no DNS server is set (volact host dns --server)"
    for server in settings.servers:
        try:
            _, markers = _existing_txt(owner, server, key, timeout)
            srv = _existing_srv(owner, server, key, timeout)
        except Exception as exc:  # every failure becomes a reason, never an exception
            failed = classify(exc, key=key, timeout=timeout)
            error = f"{server}: {failed.detail}"
            if failed.kind in _RETRY_NEXT_SERVER:
                continue
            return [], error
        return [(v, tuple(sorted(owners(markers, v.target)))) for v in srv], None
    return [], error
