"""DNS names as the publisher uses them: zones, parent domains, publishable addresses.

No I/O. Names are lower-case text without the trailing dot, as
:func:`volact.addresses.normalize_name` returns them.
"""

from __future__ import annotations

from collections.abc import Iterable

from volact.addresses import LISTEN, ip_literal, is_unicast, parse_hostport
from volact.errors import AddressError, ConfigurationError

#: The SRV service label published unless the product profile says otherwise.
DEFAULT_LABEL = "_volact._tcp"


def in_zone(name: str, zone: str) -> bool:
    """Whether ``name`` is ``zone`` or lies below it (both normalized)."""
    return name == zone or name.endswith("." + zone)


def parent_domain(fqdn: str) -> str | None:
    """The domain a host's FQDN lives in (``host1.corp.example`` → ``corp.example``)."""
    _, _, rest = fqdn.partition(".")
    return rest if "." in rest else None


def check_u16(value: int, what: str) -> int:
    """``value`` if it is an integer 0..65535 (an SRV field), else a clear error."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigurationError(f"{what} must be an integer 0..65535, not {value!r}")
    return value


def publishable_addresses(addresses: Iterable[str]) -> tuple[str, ...]:
    """The IP literals worth an A/AAAA record: wildcards (0.0.0.0, ::) and junk dropped.

    Each text may be a listen address (``127.0.0.1:1688``, ``[::1]:1688``).
    """
    out: list[str] = []
    for text in addresses:
        try:
            host, _ = parse_hostport(text, default_port=0, ports=LISTEN)
        except AddressError:
            continue
        ip = ip_literal(host)
        if ip is None or not is_unicast(ip):
            continue
        if str(ip) not in out:
            out.append(str(ip))
    return tuple(out)
