"""Which volact host owns a published name: the ownership marker beside the SRV RRset.

Identical SRV rdatas (same target, port, priority, weight) cannot be told apart,
so a host that took over another's FQDN, a renamed host and a host whose
``--fqdn`` was briefly wrong would each delete records that now belong to another
host. Every host therefore publishes, in each zone, one TXT rdata at the SRV
owner name (``_volact._tcp.<zone>``) saying which host id publishes which target::

    _volact._tcp.corp.example. TXT "volact-owner" "<host id, hex>" "<target FQDN>" "<address>"...

The addresses are the A/AAAA the host published at its FQDN in this zone (none when
the FQDN lies in another zone), so a host that takes a name over removes exactly
the previous owner's addresses, and a host that lost a name removes only its own.

A host never publishes a target another host id owns unless told to take it over,
and never deletes records under a name another host id owns. Each update carries
the TXT RRset it read as an RFC 2136 prerequisite, so two hosts racing for a name
cannot both win: the second update fails whole and is retried. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from volact.addresses import ip_literal, normalize_name
from volact.errors import AddressError

#: First string of every marker: TXT rdatas without it are someone else's.
MARKER_TAG = "volact-owner"
#: Most addresses one marker lists (a TXT rdata stays well under 64 KiB).
MAX_MARKER_ADDRESSES = 32


@dataclass(frozen=True)
class Marker:
    """One ownership marker: host ``host_id`` publishes SRV records targeting ``target``."""

    host_id: str  #: the owner's host id, 16 lower-case hex digits
    target: str  #: the FQDN its SRV rdatas target, normalized
    addresses: tuple[str, ...] = ()  #: the A/AAAA it published at ``target`` in this zone

    def strings(self) -> tuple[str, ...]:
        return (MARKER_TAG, self.host_id, self.target, *self.addresses)

    def rdata(self) -> str:
        """The TXT rdata in presentation form (every string quoted)."""
        return " ".join(f'"{s}"' for s in self.strings())

    @classmethod
    def from_strings(cls, strings: Sequence[bytes]) -> Marker | None:
        """The marker a TXT rdata's strings hold, or None if they are not a valid one."""
        if len(strings) < 3 or len(strings) > 3 + MAX_MARKER_ADDRESSES:
            return None
        try:
            texts = [s.decode("ascii") for s in strings]
        except UnicodeDecodeError:
            return None
        tag, host_id, target, *addresses = texts
        if tag != MARKER_TAG or len(host_id) != 16:
            return None
        if any(c not in "0123456789abcdef" for c in host_id):
            return None
        try:
            name = normalize_name(target)
        except AddressError:
            return None
        if name != target:
            return None
        ips = [ip_literal(a) for a in addresses]
        if any(ip is None or str(ip) != a for ip, a in zip(ips, addresses, strict=True)):
            return None
        return cls(host_id, target, tuple(addresses))


def owners(markers: Iterable[Marker], target: str) -> set[str]:
    """The host ids whose markers claim ``target``."""
    return {m.host_id for m in markers if m.target == target}


def owned_by_other(markers: Iterable[Marker], target: str, host_id: str) -> str | None:
    """Another host id that claims ``target``, or None (unclaimed, or claimed by us only)."""
    others = sorted(owners(markers, target) - {host_id})
    return others[0] if others else None


def addresses_of(markers: Iterable[Marker], target: str, host_id: str) -> set[str]:
    """The addresses other hosts' markers list at ``target``."""
    return {
        a for m in markers if m.target == target and m.host_id != host_id for a in m.addresses
    }
