"""`volact bench`: not built yet."""

from __future__ import annotations

import argparse
from typing import Any


def register(groups: Any) -> None:
    parser: argparse.ArgumentParser = groups.add_parser("bench", help="(bench: not built yet)")
    parser.set_defaults(func=lambda args: 2)
