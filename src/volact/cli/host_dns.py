"""`volact host dns`: placeholder until the DNS work lands; registered by cli/host.py."""

from __future__ import annotations

from typing import Any


def register(host_commands: Any) -> None:
    """Add the ``dns`` sub-command to ``volact host``'s sub-parsers."""
    parser = host_commands.add_parser("dns", help="DNS self-publishing (not built yet)")
    parser.set_defaults(func=lambda args: 2)
