"""Who gets a connection slot on a full host, and who is let into the count: sans-I/O.

Two floods are answered here, both keyed by the client's *network*: its IPv4 /24
or its IPv6 /64 (:func:`network_of`), because one attacker on a LAN holds one
network but, with IPv6, any number of addresses in it.

:class:`Slots` hands out connection slots. A legitimate exchange takes
milliseconds, so a connection that has sent nothing for a while is the one to give
up when the host is full: a new connection is admitted by evicting the oldest
*idle* connection (no whole request yet) of the network that holds the most idle
connections, and refused only when every slot is busy with a request in progress.
Each address and each network may hold only so many slots. The server closes the
connections it is told to evict; under pressure (:attr:`Slots.under_pressure`) it
also gives idle connections a much shorter read timeout.

:class:`NewMachines` is the rate at which one network may add machines the count
has never seen (a token bucket per network): anyone on the LAN can invent machine
ids, and each is kept for 30 days. Loopback clients are not limited (``volact
bench`` and the demo run there).

No I/O, no clock: ``now`` is passed in, connections are opaque hashable objects.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Hashable
from typing import Generic, TypeVar

C = TypeVar("C", bound=Hashable)


def network_of(address: str) -> str:
    """The network a client address belongs to, as text: ``a.b.c.0/24`` or ``x:x:x:x::/64``.

    An IPv4-mapped IPv6 address counts as its IPv4 address; a string that is not
    an IP address (a test's made-up peer, a Unix socket) is its own network.
    """
    if "." in address and ":" not in address:  # the common case, without ipaddress
        head, sep, _ = address.rpartition(".")
        return f"{head}.0/24" if sep else address
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return network_of(str(ip.ipv4_mapped))
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def is_loopback(address: str) -> bool:
    """Whether ``address`` is a loopback address (127.0.0.0/8, ::1, or mapped)."""
    if address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1"):
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


class Slots(Generic[C]):
    """Connection slots: at most ``total``, ``per_address`` and ``per_network`` at once.

    A connection is *idle* from :meth:`admit` until :meth:`busy` (its request is
    whole) and holds its slot until :meth:`release`. ``per_address`` or
    ``per_network`` 0 means no such cap.

    Evictions must not feed themselves: an attacker whose evicted connections
    reconnect at once would otherwise evict its own connections in a loop. So a
    full host evicts for a newcomer only when the newcomer's network holds (with
    it) fewer idle connections than the network it takes from, and a network at
    its share gives up one of its own idle
    connections only when that one has been idle ``min_idle_age`` seconds. Every
    connection goes through :meth:`admit`, :meth:`busy` and :meth:`release`, so
    they are kept to a few dict operations each.
    """

    __slots__ = ("_held", "_idle", "_per_address", "_per_network", "evicted", "min_idle_age",
                 "per_address", "per_network", "total")  # fmt: skip

    def __init__(
        self, total: int, per_address: int = 0, per_network: int = 0, min_idle_age: float = 1.0
    ) -> None:
        self.total = total  #: slots in all
        self.per_address = per_address  #: slots one address may hold (0: no cap)
        self.per_network = per_network  #: slots one /24 or /64 may hold (0: no cap)
        self.evicted = 0  #: idle connections given up for newcomers since start
        #: seconds a connection of a network at its share stays safe from eviction
        self.min_idle_age = min_idle_age
        #: connection -> (address, network)
        self._held: dict[C, tuple[str, str]] = {}
        #: idle connections by network, oldest first, with when they were admitted
        self._per_address: dict[str, int] = {}
        self._per_network: dict[str, int] = {}
        self._idle: dict[str, dict[C, float]] = {}

    def __len__(self) -> int:
        return len(self._held)

    @property
    def under_pressure(self) -> bool:
        """Three quarters of the slots are taken: idle connections get a short timeout."""
        return len(self._held) * 4 >= self.total * 3

    def admit(self, conn: C, address: str, now: float = 0.0) -> list[C] | None:
        """Give ``conn`` a slot: the connections to close for it (often none), or None to refuse.

        ``now`` is a monotonic time in seconds. The connections returned have
        already lost their slots.
        """
        per_address = self._per_address
        n_address = per_address.get(address, 0)
        if self.per_address and n_address >= self.per_address:
            return None  # one machine does not need more
        if ":" in address or address.count(".") != 3:
            network = network_of(address)
        else:  # IPv4, inline: this runs for every connection
            network = address[: address.rfind(".")] + ".0/24"
        n_network = self._per_network.get(network, 0)
        evict: list[C] = []
        if self.per_network and n_network >= self.per_network:
            idle = self._idle.get(network)
            if not idle:
                return None
            victim, since = next(iter(idle.items()))
            if now - since < self.min_idle_age:
                return None
            evict.append(victim)
        elif len(self._held) >= self.total:
            busiest = self._most_idle_network()
            if busiest is None:
                return None  # every slot is busy with a request
            victims = self._idle[busiest]
            if len(self._idle.get(network, ())) + 1 >= len(victims):
                # The newcomer's network would hold as many idle slots as the one it
                # takes from: among attackers that would only trade slots, forever.
                return None
            victim = next(iter(victims))
            evict.append(victim)
        if evict:
            for victim in evict:
                self.release(victim)
                self.evicted += 1
            n_address = per_address.get(address, 0)
            n_network = self._per_network.get(network, 0)
        self._held[conn] = (address, network)
        per_address[address] = n_address + 1
        self._per_network[network] = n_network + 1
        idle = self._idle.get(network)
        if idle is None:
            self._idle[network] = {conn: now}
        else:
            idle[conn] = now
        return evict

    def busy(self, conn: C) -> None:
        """``conn`` sent a whole request: it keeps its slot and can no longer be evicted."""
        held = self._held.get(conn)
        if held is not None:
            idle = self._idle.get(held[1])
            if idle is not None and conn in idle:
                del idle[conn]
                if not idle:
                    del self._idle[held[1]]

    def release(self, conn: C) -> None:
        """``conn`` is closed: its slot is free (nothing happens for an unknown one)."""
        held = self._held.pop(conn, None)
        if held is None:
            return
        address, network = held
        idle = self._idle.get(network)
        if idle is not None and conn in idle:
            del idle[conn]
            if not idle:
                del self._idle[network]
        # _decrement, inlined: this runs for every connection.
        counts = self._per_address
        n = counts[address] - 1
        if n:
            counts[address] = n
        else:
            del counts[address]
        counts = self._per_network
        n = counts[network] - 1
        if n:
            counts[network] = n
        else:
            del counts[network]

    def is_idle(self, conn: C) -> bool:
        held = self._held.get(conn)
        return held is not None and conn in self._idle.get(held[1], ())

    def _most_idle_network(self) -> str | None:
        # A linear scan, only when the host is full: there are at most as many
        # networks as slots, and a flood from one network makes it one entry.
        best, most = None, 0
        for network, idle in self._idle.items():
            if len(idle) > most:
                best, most = network, len(idle)
        return best


class NewMachines:
    """How many machines new to the count one network may add: a token bucket per network.

    Each network starts with ``per_hour`` tokens and earns ``per_hour`` an hour, up
    to ``per_hour``; each new machine takes one. At most ``max_networks`` buckets
    are kept (the oldest is forgotten, which refills it: memory stays bounded).
    ``per_hour`` 0 means no limit. Loopback addresses, and callers that give no
    address (in-process), are never limited.
    """

    __slots__ = ("_buckets", "max_networks", "per_hour")

    def __init__(self, per_hour: int, max_networks: int = 10_000) -> None:
        self.per_hour = per_hour
        self.max_networks = max_networks
        #: network -> (tokens, when they were counted)
        self._buckets: dict[str, tuple[float, int]] = {}

    def allow(self, address: str, now: int) -> bool:
        """Whether a machine new to the count may be counted from ``address`` at ``now``."""
        if not self.per_hour or not address or is_loopback(address):
            return True  # no limit, an in-process caller, or this very machine
        network = network_of(address)
        rate = self.per_hour / 3600.0
        held = self._buckets.pop(network, None)
        if held is None:
            tokens = float(self.per_hour)
            if len(self._buckets) >= self.max_networks:
                del self._buckets[next(iter(self._buckets))]
        else:
            tokens = min(float(self.per_hour), held[0] + max(0, now - held[1]) * rate)
        allowed = tokens >= 1.0
        self._buckets[network] = (tokens - 1.0 if allowed else tokens, now)
        return allowed


__all__ = ["NewMachines", "Slots", "is_loopback", "network_of"]
