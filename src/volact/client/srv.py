"""SRV records and host addresses as plain values, shared by discovery and the planner.

No I/O: the planner chooses among these, the discovery adapter produces them.
"""

from __future__ import annotations

from dataclasses import dataclass

from volact.addresses import format_hostport, parse_hostport, valid_host_name
from volact.wire import DEFAULT_PORT

__all__ = ["HostAddress", "SrvRecord", "valid_host_name"]


@dataclass(frozen=True)
class SrvRecord:
    """One SRV answer (RFC 2782)."""

    priority: int  #: lower is tried first
    weight: int  #: relative share among records of the same priority
    port: int  #: the host's TCP port
    target: str  #: the host's name, without the trailing dot


@dataclass(frozen=True)
class HostAddress:
    """A host to try: a name or IP literal and a port."""

    host: str  #: DNS name or IP address (IPv6 without brackets)
    port: int = DEFAULT_PORT  #: TCP port

    def __str__(self) -> str:
        return format_hostport(self.host, self.port)

    @classmethod
    def parse(cls, text: str, default_port: int = DEFAULT_PORT) -> HostAddress:
        """``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT``; a bare IPv6 literal too.

        Raises :class:`~volact.errors.AddressError` (a ``ConfigurationError``).
        """
        return cls(*parse_hostport(text, default_port=default_port, what="host"))
