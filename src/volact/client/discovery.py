"""Finding hosts in DNS: SRV lookups and A/AAAA resolution. Placeholder until the DNS work lands.

Interface the client relies on (keep it): ``lookup_srv``, ``lookup_srv_async``,
``resolve_host``, ``resolve_host_async``, ``search_domains``. Lookups return an
empty list when the name does not exist or has no such records, and raise
:class:`volact.errors.TransportError` when no nameserver answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from volact.client.srv import HostAddress, SrvRecord


def lookup_srv(
    name: str, *, nameservers: Sequence[HostAddress] | None = None, timeout: float = 3.0
) -> list[SrvRecord]:
    """SRV records at ``name`` (e.g. ``_volact._tcp.corp.example``)."""
    del name, nameservers, timeout
    return []


async def lookup_srv_async(
    name: str, *, nameservers: Sequence[HostAddress] | None = None, timeout: float = 3.0
) -> list[SrvRecord]:
    return lookup_srv(name, nameservers=nameservers, timeout=timeout)


def resolve_host(
    target: str, *, nameservers: Sequence[HostAddress] | None = None, timeout: float = 3.0
) -> list[str]:
    """IPv6 and IPv4 addresses of ``target`` (IP literals come back as they are)."""
    del nameservers, timeout
    return [target]


async def resolve_host_async(
    target: str, *, nameservers: Sequence[HostAddress] | None = None, timeout: float = 3.0
) -> list[str]:
    return resolve_host(target, nameservers=nameservers, timeout=timeout)


def search_domains() -> list[str]:
    """The machine's DNS search domains (from the system resolver configuration)."""
    return []
