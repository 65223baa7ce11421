"""`volact host`: not built yet."""

from __future__ import annotations

import argparse
from typing import Any


def register(groups: Any) -> None:
    parser: argparse.ArgumentParser = groups.add_parser("host", help="(host: not built yet)")
    parser.set_defaults(func=lambda args: 2)
