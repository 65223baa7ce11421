"""The DNS servers a host sends its updates to: ``ADDR``, ``ADDR:PORT``, ``[V6]:PORT``.

No I/O: the grammar is :mod:`volact.addresses`'s; resolving a name happens when an
update is sent (:mod:`volact.host.dns.updates`).
"""

from __future__ import annotations

from dataclasses import dataclass

from volact.addresses import format_hostport, parse_hostport
from volact.errors import AddressError

#: Seconds to wait for one DNS server to answer one message.
QUERY_TIMEOUT = 5.0

#: Port a DNS server listens on unless ``ADDR:PORT`` says otherwise.
DNS_PORT = 53


@dataclass(frozen=True)
class ServerAddress:
    """A DNS server that takes the updates."""

    host: str  #: IP literal or name (IPv6 without brackets)
    port: int = DNS_PORT  #: TCP port

    def __post_init__(self) -> None:
        if not self.host:
            raise AddressError("DNS server address is empty")
        if not 1 <= self.port <= 65535:
            raise AddressError(f"DNS server port must be 1..65535, not {self.port}")

    def __str__(self) -> str:
        return format_hostport(self.host, self.port)

    @classmethod
    def parse(cls, text: str) -> ServerAddress:
        """``ADDR``, ``ADDR:PORT``, ``[V6]``, ``[V6]:PORT`` or a bare IPv6 literal."""
        return cls(*parse_hostport(text, default_port=DNS_PORT, what="DNS server"))
