"""Which rdatas one RFC 2136 update deletes and adds, and what this host published.

A host replaces *only its own* records: never a whole RRset, which others may
share; deletions are exactly the rdatas it recorded having published (or, for its
SRV, those targeting its own FQDN). No I/O: the existing SRV rdatas come in, a plan
comes out; :mod:`volact.host.dns.updates` sends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from volact.addresses import check_service_label, ip_literal, normalize_name
from volact.errors import ConfigurationError, NameOwned
from volact.host.dns.names import check_u16, in_zone, publishable_addresses
from volact.host.dns.ownership import MAX_MARKER_ADDRESSES, Marker, addresses_of, owned_by_other


@dataclass(frozen=True)
class SrvValue:
    """One SRV rdata as found in (or meant for) the zone."""

    priority: int  #: SRV priority
    weight: int  #: SRV weight
    port: int  #: target port
    target: str  #: target name, normalized

    def rdata(self) -> str:
        return f"{self.priority} {self.weight} {self.port} {self.target}."


@dataclass(frozen=True)
class Change:
    """One rdata an update deletes or adds; never a whole RRset, which others may share."""

    name: str  #: owner name, absolute without the trailing dot
    rdtype: str  #: "SRV", "A" or "AAAA"
    rdata: str  #: presentation form
    ttl: int = 0  #: for additions

    def __str__(self) -> str:
        return f"{self.name} {self.rdtype} {self.rdata}"


@dataclass(frozen=True)
class UpdatePlan:
    """One RFC 2136 update for one zone: deletions first, then additions.

    ``cleanup`` goes in a second update, sent after the first succeeds: old records
    under names the first does not touch (a previous FQDN or label). A
    least-privilege ``update-policy`` may no longer grant those names, and a refusal
    of them must not stop the host publishing under its current name.
    """

    zone: str  #: the zone the update goes to
    deletes: tuple[Change, ...]  #: removed first (only this host's own records)
    adds: tuple[Change, ...]  #: then added
    cleanup: tuple[Change, ...] = ()  #: removed by a second update (old names)
    #: the TXT RRset at the SRV owner name that must be there, exactly, for the first
    #: update to apply (RFC 2136 prerequisite; empty: no TXT RRset); None: no check
    expect_txt: tuple[str, ...] | None = None
    #: names whose old records were left alone because another host id owns them now
    left: tuple[str, ...] = ()
    #: the host id this update takes the name over from, if it does
    taken_from: str | None = None
    #: where the markers of ``expect_txt`` live: the SRV owner name
    marker_owner: str | None = None

    def summary(self) -> str:
        """What a person reads in the event log, e.g. ``SRV 0 0 1688 host1.corp.example``."""
        parts = [f"{c.rdtype} {c.rdata}".rstrip(".") for c in self.adds if c.rdtype != "TXT"]
        if not parts:
            parts = [
                f"removed {c.rdtype} {c.rdata}".rstrip(". ")
                for c in self.deletes
                if c.rdtype != "TXT"
            ]
        text = ", ".join(parts) if parts else "nothing to change"
        if self.taken_from is not None:
            text += f"; took the name over from host {self.taken_from}"
        if self.left:
            text += f"; left records owned by another host: {', '.join(self.left)}"
        return text


def own_records(existing: Iterable[SrvValue], fqdn: str) -> tuple[SrvValue, ...]:
    """The SRV rdatas that are this host's: those whose target is its FQDN (any port)."""
    return tuple(v for v in existing if v.target == fqdn)


def _record_from_json(obj: object, zone: str) -> Change | None:
    """One recorded rdata, canonical, or None if it is not one this host could have added."""
    if not isinstance(obj, Mapping):
        return None
    name, rdtype, rdata = obj.get("name"), obj.get("type"), obj.get("rdata")
    if not (isinstance(name, str) and isinstance(rdtype, str) and isinstance(rdata, str)):
        return None
    try:
        name = normalize_name(name)
        if not in_zone(name, zone):
            return None
        if rdtype == "SRV":
            label = ".".join(name.split(".")[:2])
            if name != f"{check_service_label(label)}.{zone}":
                return None
            parts = rdata.split()
            if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts[:3]):
                return None
            pr, wt, port = (check_u16(int(p), "SRV field") for p in parts[:3])
            value = SrvValue(pr, wt, port, normalize_name(parts[3]))
            return Change(name, "SRV", value.rdata())
        if rdtype in ("A", "AAAA"):
            ip = ip_literal(rdata)
            if ip is None or (ip.version == 4) != (rdtype == "A"):
                return None
            return Change(name, rdtype, str(ip))
    except (ConfigurationError, ValueError):  # ValueError: int() of a huge digit string
        return None
    return None


@dataclass(frozen=True)
class Published:
    """What this host last put into one zone: the exact rdatas, kept in ``dns-state.json``.

    Publishing and unpublishing delete exactly these (never a whole RRset), so
    records an administrator maintains at the same names are never touched.
    """

    fqdn: str | None  #: the name they were published under; None if unknown
    records: tuple[Change, ...] = ()  #: the SRV, A and AAAA rdatas added (``ttl`` unused)

    def to_json(self) -> dict[str, Any]:
        return {
            "fqdn": self.fqdn,
            "records": [{"name": c.name, "type": c.rdtype, "rdata": c.rdata} for c in self.records],
        }

    @classmethod
    def from_state(cls, entry: Mapping[str, Any], *, zone: str, fqdn: str | None) -> Published:
        """What one domain's ``dns-state.json`` entry says was published into ``zone``.

        Entries that could not be this host's (another zone, a malformed rdata) are
        dropped. An entry written before rdatas were recorded has only ``addresses``
        (and the file's top-level ``fqdn``, passed as ``fqdn``): its A/AAAA are
        rebuilt from them, and its SRV is found by target (see :func:`plan_publish`).
        """
        raw = entry.get("records")
        records: list[Change] = []
        if isinstance(raw, list):
            name = entry.get("fqdn")
            for item in raw[:MAX_RECORDS_KEPT]:
                rec = _record_from_json(item, zone)
                if rec is not None and rec not in records:
                    records.append(rec)
        elif entry.get("published") is True:  # written before rdatas were recorded
            name = fqdn
            addresses = entry.get("addresses")
            if not isinstance(addresses, list):
                addresses = []
            texts = [a for a in addresses if isinstance(a, str)]
            for a in publishable_addresses(texts[:MAX_RECORDS_KEPT]):
                kind = "AAAA" if ":" in a else "A"
                rec = _record_from_json({"name": fqdn, "type": kind, "rdata": a}, zone)
                if rec is not None:
                    records.append(rec)
        else:
            return cls(None, ())
        try:
            name = normalize_name(name) if isinstance(name, str) else None
        except ConfigurationError:
            name = None
        return cls(name, tuple(records))


#: Most recorded rdatas read back from ``dns-state.json`` per domain.
MAX_RECORDS_KEPT = 256


def _previous_deletes(
    previous: Published | None, fqdn: str, existing_srv: Sequence[SrvValue], owner: str
) -> list[Change]:
    """Deletions for what this host published before: the recorded rdatas exactly.

    A record from before rdatas were kept names its SRV only by the old FQDN: then
    the SRV rdatas targeting that name are this host's previous ones.
    """
    if previous is None:
        return []
    out = [Change(c.name, c.rdtype, c.rdata) for c in previous.records]
    has_srv = any(c.rdtype == "SRV" for c in previous.records)
    if not has_srv and previous.fqdn is not None and previous.fqdn != fqdn:
        out += [Change(owner, "SRV", v.rdata()) for v in own_records(existing_srv, previous.fqdn)]
    return out


def _srv_target(c: Change) -> str:
    return c.rdata.split()[-1].rstrip(".")


def _not_others(
    deletes: Iterable[Change], ownership: Ownership | None, fqdn: str
) -> tuple[list[Change], list[str]]:
    """``deletes`` without what another host id owns now, and the names left to others.

    An SRV rdata targeting a name another host claims is that host's (identical rdatas
    cannot be told apart); an A/AAAA at such a name is left when that host's marker
    lists the address. The current ``fqdn`` is checked by the caller (refused or taken
    over), so it is not filtered here.
    """
    if ownership is None:
        return list(deletes), []
    kept: list[Change] = []
    left: list[str] = []
    for c in deletes:
        name = _srv_target(c) if c.rdtype == "SRV" else c.name
        other = None if name == fqdn else owned_by_other(ownership.markers, name, ownership.host_id)
        if other is not None and (
            c.rdtype == "SRV"
            or c.rdata in addresses_of(ownership.markers, name, ownership.host_id)
        ):
            note = f"{name} (now host {other})"
            if note not in left:
                left.append(note)
            continue
        kept.append(c)
    return kept, left


@dataclass(frozen=True)
class Ownership:
    """This host's id and the ownership markers read from the zone with the SRV RRset."""

    host_id: str  #: this host's id, 16 lower-case hex digits
    markers: tuple[Marker, ...] = ()  #: every valid marker at the SRV owner name
    txt_seen: tuple[str, ...] = ()  #: the whole TXT RRset as read (the prerequisite)


def _marker_changes(
    ownership: Ownership | None, owner: str, new: Marker | None, take_over: bool, ttl: int
) -> tuple[list[Change], list[Change]]:
    """Delete this host's markers (and, on a take-over, the target's other markers);
    add ``new``."""
    if ownership is None:
        return [], []
    deletes = [
        Change(owner, "TXT", m.rdata())
        for m in ownership.markers
        if (m.host_id == ownership.host_id and m != new)
        or (take_over and new is not None and m.target == new.target and m != new)
    ]
    adds = [Change(owner, "TXT", new.rdata(), ttl)] if new is not None else []
    return deletes, adds


def _split(
    zone: str,
    deletes: Iterable[Change],
    adds: Sequence[Change],
    names: set[str],
    *,
    ownership: Ownership | None = None,
    left: Sequence[str] = (),
    taken_from: str | None = None,
    owner: str | None = None,
) -> UpdatePlan:
    """The plan: deletions at ``names`` go with the additions, the rest to ``cleanup``."""
    main: list[Change] = []
    later: list[Change] = []
    for c in deletes:
        part = main if c.name in names else later
        if c not in part:
            part.append(c)
    expect = None if ownership is None else ownership.txt_seen
    return UpdatePlan(
        zone, tuple(main), tuple(adds), tuple(later), expect, tuple(left), taken_from, owner
    )


def plan_publish(
    *,
    zone: str,
    label: str,
    fqdn: str,
    port: int,
    priority: int,
    weight: int,
    ttl: int,
    addresses: Sequence[str],
    existing_srv: Iterable[SrvValue],
    previous: Published | None = None,
    ownership: Ownership | None = None,
    take_over: bool = False,
) -> UpdatePlan:
    """Replace this host's SRV record in ``zone`` (and its A/AAAA if its name is in ``zone``).

    Deleted: the SRV rdatas targeting ``fqdn`` (whatever their port, so a port change
    replaces the old record and another host's record is never touched), and exactly
    the rdatas ``previous`` says this host published before, under whatever FQDN (so
    a renamed host leaves nothing behind; those under another name go in
    ``cleanup``). Never a whole RRset: A/AAAA records an administrator keeps at the
    same name stay. Added: the SRV, and an A/AAAA per publishable address when
    ``fqdn`` lies in ``zone``.

    With ``ownership`` (always, from the publisher) the plan also replaces this
    host's marker, leaves alone what another host id owns, and raises
    :class:`~volact.errors.NameOwned` when another host id owns ``fqdn`` itself,
    unless ``take_over``: then that host's marker and listed addresses go too.
    """
    if not 1 <= port <= 65535:
        raise ConfigurationError(f"port must be 1..65535, not {port}")
    owner = f"{label}.{zone}"
    existing = tuple(existing_srv)
    new = SrvValue(priority, weight, port, fqdn)
    deletes = [Change(owner, "SRV", v.rdata()) for v in own_records(existing, fqdn)]
    deletes += _previous_deletes(previous, fqdn, existing, owner)
    deletes, left = _not_others(deletes, ownership, fqdn)
    adds = [Change(owner, "SRV", new.rdata(), ttl)]
    published: list[str] = []
    if in_zone(fqdn, zone):
        for a in publishable_addresses(addresses):
            adds.append(Change(fqdn, "AAAA" if ":" in a else "A", a, ttl))
            published.append(a)
    marker: Marker | None = None
    other: str | None = None
    if ownership is not None:
        other = owned_by_other(ownership.markers, fqdn, ownership.host_id)
        if other is not None and not take_over:
            raise NameOwned(
                f"{fqdn} is published in {zone} by another volact host (host id {other}); "
                "nothing was changed. If this host replaces that one, run "
                "`volact host dns publish --take-over` here once; if not, fix this "
                "host's name (`volact host set --fqdn` or `volact host dns --fqdn`)",
                owner=other,
            )
        if other is not None:  # taking over: the previous owner's addresses go too
            for a in sorted(addresses_of(ownership.markers, fqdn, ownership.host_id)):
                deletes.append(Change(fqdn, "AAAA" if ":" in a else "A", a))
        marker = Marker(ownership.host_id, fqdn, tuple(published[:MAX_MARKER_ADDRESSES]))
    mdel, madd = _marker_changes(ownership, owner, marker, take_over, ttl)
    return _split(
        zone,
        deletes + mdel,
        adds + madd,
        {owner, fqdn},
        ownership=ownership,
        left=left,
        taken_from=other,
        owner=owner,
    )


def plan_unpublish(
    *,
    zone: str,
    label: str,
    fqdn: str,
    existing_srv: Iterable[SrvValue],
    previous: Published | None = None,
    ownership: Ownership | None = None,
) -> UpdatePlan:
    """Remove this host's SRV rdatas targeting ``fqdn`` and exactly what ``previous`` holds.

    A/AAAA are removed only as recorded rdatas: a host that never recorded an
    address removes none, whatever the name holds. With ``ownership``, nothing under
    a name another host id owns now is removed (``fqdn`` included), and this host's
    markers go.
    """
    owner = f"{label}.{zone}"
    existing = tuple(existing_srv)
    deletes = [Change(owner, "SRV", v.rdata()) for v in own_records(existing, fqdn)]
    deletes += _previous_deletes(previous, fqdn, existing, owner)
    left: list[str] = []
    if ownership is not None:
        # Unlike publishing, the current name is no exception: if another host took
        # it over, its records are that host's.
        deletes, left = _not_others(deletes, ownership, "")
    mdel, _ = _marker_changes(ownership, owner, None, False, 0)
    return _split(
        zone, deletes + mdel, (), {owner, fqdn}, ownership=ownership, left=left, owner=owner
    )
