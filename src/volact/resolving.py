"""An address to connect to: an IP literal as it is, a name through ``getaddrinfo``.

The I/O half of :mod:`volact.addresses`, for the adapters that must reach a server
given by name (the host's DNS publisher, the client's nameservers). Errors stay
``OSError``: each adapter translates them into its own words at its boundary.
"""

from __future__ import annotations

import socket

from volact.addresses import ip_literal


def connect_ip(host: str, port: int, *, socktype: int = socket.SOCK_STREAM) -> str:
    """``host`` as an IP address text: a literal unchanged (canonical), else its first
    ``getaddrinfo`` answer. Raises ``OSError`` (``socket.gaierror``) when it does not
    resolve."""
    ip = ip_literal(host)
    if ip is not None:
        return str(ip)
    infos = socket.getaddrinfo(host, port, type=socktype)
    if not infos:
        raise OSError(f"{host} has no address")
    return str(infos[0][4][0])
