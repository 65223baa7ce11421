"""The one grammar for what people type as an address: names, ``HOST[:PORT]``, labels.

Host, client and authority all take addresses from settings and command lines: a
host to activate with, a DNS server to update, a nameserver to ask, an address to
listen on. They share this grammar, so ``[2001:db8::5]:1688`` means the same
everywhere and a mistake gets the same clear message:

- :func:`normalize_name` / :func:`valid_host_name`: a DNS name (letters, digits,
  ``-`` and ``_``; 1-63 characters a label, 253 in all), lower-cased, no final dot;
- :func:`parse_hostport`: ``HOST``, ``HOST:PORT``, ``[V6]``, ``[V6]:PORT`` or a bare
  IPv6 literal, with the port range the caller allows; :func:`format_hostport` is
  its inverse;
- :func:`check_service_label`: an SRV service label such as ``_volact._tcp`` (never
  ``_vlmcs._tcp``, another protocol's);
- :func:`ip_literal` and :func:`is_unicast`: IP literals, and whether one names a
  single host.

Every failure is an :class:`~volact.errors.AddressError` naming what was wrong. No
I/O here: resolving a name is :mod:`volact.resolving`'s.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from volact.errors import AddressError

#: A different protocol's SRV label: volact never publishes nor looks it up.
FORBIDDEN_LABEL = "_vlmcs._tcp"

_LABEL_RE = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --------------------------------------------------------------------------- names


def normalize_name(text: str, what: str = "name") -> str:
    """``text`` as a lower-case DNS name without the trailing dot; raise if it is not one.

    Letters, digits, ``-`` and ``_`` per label (``_`` for service labels), at most 63
    characters a label and 253 in all. ``what`` names the setting in the message.
    """
    name = text.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise AddressError(f"{what} is empty")
    if len(name) > 253:
        raise AddressError(f"{what} {text!r} is longer than 253 characters")
    for label in name.split("."):
        if not _LABEL_RE.match(label):
            raise AddressError(
                f"{what} {text!r}: label {label!r} is not a DNS label "
                "(letters, digits, '-', '_'; 1-63 characters; no leading or trailing '-')"
            )
    return name


def valid_host_name(name: str) -> bool:
    """Whether ``name`` is a DNS host name :func:`normalize_name` accepts, as it is."""
    if name != name.strip():
        return False
    try:
        normalize_name(name)
    except AddressError:
        return False
    return True


def check_service_label(label: str) -> str:
    """An SRV service label like ``_volact._tcp``, normalized; never ``_vlmcs._tcp``."""
    value = label.strip().lower().rstrip(".")
    if value == FORBIDDEN_LABEL:
        raise AddressError(
            f"{FORBIDDEN_LABEL} belongs to another protocol; volact never publishes it"
        )
    parts = value.split(".")
    if len(parts) != 2 or not all(p.startswith("_") and len(p) > 1 for p in parts):
        raise AddressError(f"service label {label!r} must look like _service._tcp")
    normalize_name(value, "service label")
    return value


# --------------------------------------------------------------------------- IPs


def ip_literal(text: str) -> IPAddress | None:
    """``text`` as an IP address (IPv6 without brackets), or None if it is not one."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_unicast(ip: IPAddress) -> bool:
    """Whether ``ip`` names one host: not a wildcard, broadcast, multicast or reserved.

    Loopback counts (a host may publish ``127.0.0.1`` for machines on itself, and a
    client may be told to use it); an IPv4-mapped IPv6 address is judged by its IPv4
    address.
    """
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return True
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return False  # IPv4 reserved is 240.0.0.0/4 with 255.255.255.255; IPv6 ::/8 ...
    return not (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK)


# --------------------------------------------------------------------------- HOST:PORT


@dataclass(frozen=True)
class PortRange:
    """The ports a setting allows: 1..65535 to connect, 0..65535 to listen (0: any)."""

    low: int = 1  #: smallest port allowed
    high: int = 65535  #: largest port allowed


#: Ports a connection can go to.
CONNECT = PortRange(1)
#: Ports a socket can listen on (0 lets the system choose).
LISTEN = PortRange(0)


def format_hostport(host: str, port: int) -> str:
    """``host:port``, with an IPv6 literal in brackets (``[::1]:1688``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_hostport(
    text: str,
    *,
    default_port: int | None,
    ports: PortRange = CONNECT,
    what: str = "address",
    any_host: bool = False,
) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]``, ``[V6]:PORT`` or a bare IPv6 literal → (host, port).

    HOST is an IP literal or a host name (returned as typed, IPv6 without brackets);
    brackets hold an IPv6 literal only. With ``default_port=None`` the port must be
    given. ``any_host`` accepts ``:PORT`` or ``*:PORT`` with no host (``""``: every
    interface, IPv4 and IPv6).
    """
    s = text.strip()
    if any_host and s.startswith("*:"):
        s = s[1:]
    where = f"{what} {text!r}"
    host, port_text, has_port = s, "", False
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise AddressError(f"{where}: unclosed '[' in an IPv6 address")
        host, rest = s[1:end], s[end + 1 :]
        if rest and not rest.startswith(":"):
            raise AddressError(f"{where}: expected ':PORT' after ']'")
        if not isinstance(ip_literal(host), ipaddress.IPv6Address):
            raise AddressError(f"{where}: {host!r} in brackets is not an IPv6 address")
        port_text, has_port = rest[1:], bool(rest)
    elif s.count(":") == 1:
        host, port_text = s.split(":")
        has_port = True
    if not host and not (any_host and has_port):
        raise AddressError(f"{where}: no host name or address")
    if host and ip_literal(host) is None and not valid_host_name(host):
        part = "" if host == s else f": {host!r}"
        raise AddressError(
            f"{where}{part} is neither an IP address nor a host name "
            "(expected HOST, HOST:PORT or [IPV6]:PORT)"
        )
    if not has_port:
        if default_port is None:
            raise AddressError(f"{where}: no port (expected HOST:PORT or [IPV6]:PORT)")
        return host, default_port
    digits = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    if not digits or not ports.low <= int(port_text) <= ports.high:
        raise AddressError(f"{where}: port must be {ports.low}..{ports.high}")
    return host, int(port_text)
