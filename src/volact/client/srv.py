"""SRV records and host addresses as plain values, shared by discovery and the planner.

No I/O: the planner chooses among these, the discovery adapter produces them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from volact.errors import ConfigurationError
from volact.wire import DEFAULT_PORT

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def valid_host_name(name: str) -> bool:
    """A plausible DNS host name: labels of letters, digits, ``-`` and ``_``."""
    name = name.rstrip(".")
    if not name or len(name) > 253:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str, default_port: int = DEFAULT_PORT) -> HostAddress:
        """``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT``; a bare IPv6 literal too."""
        s = text.strip()
        host, port_text = s, ""
        if s.startswith("["):
            end = s.find("]")
            if end < 0:
                raise ConfigurationError(f"{text!r}: unclosed '[' in an IPv6 address")
            host, rest = s[1:end], s[end + 1 :]
            if rest and not rest.startswith(":"):
                raise ConfigurationError(f"{text!r}: expected ':PORT' after ']'")
            port_text = rest[1:]
        elif s.count(":") == 1:
            host, port_text = s.split(":")
        if not host:
            raise ConfigurationError(f"{text!r}: no host name")
        if not _is_ip(host) and not valid_host_name(host):
            raise ConfigurationError(f"{text!r}: {host!r} is neither an IP address nor a host name")
        port = default_port
        if port_text:
            digits = port_text.isascii() and port_text.isdigit()
            if not digits or not 1 <= int(port_text) <= 65535:
                raise ConfigurationError(f"{text!r}: port must be 1..65535")
            port = int(port_text)
        return cls(host, port)
