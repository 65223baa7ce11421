"""Publishing the host in DNS (RFC 2136 + TSIG). Placeholder until the DNS work lands.

Interface the host server and host status rely on (keep it): ``publish_loop`` and
``status``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


async def publish_loop(
    home: Path,
    *,
    fqdn: str,
    port: int,
    addresses: Sequence[str],
    record_event: Callable[[str, str], None],
    stop: asyncio.Event,
) -> None:
    """Publish at start and every 24 h until ``stop`` is set; never raises.

    ``record_event(kind, message)`` records a host event, e.g.
    ``("dns_publish_ok", "corp.example: SRV 0 0 1688 host1.corp.example")`` or
    ``("dns_publish_failed", "corp.example: refused (NOTAUTH): bad TSIG key")``.
    Returns at once when DNS publishing is not configured or is disabled.
    """
    del home, fqdn, port, addresses, record_event, stop


def status(home: Path) -> dict[str, Any]:
    """DNS publishing settings and last outcome, for ``volact host status``."""
    del home
    return {"enabled": False}
