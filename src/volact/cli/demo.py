"""``volact demo``: run the whole system on loopback and show the case study happen.

A thin shell over :mod:`volact.demo`: parse the options, hand it the CLI entry point
(for the in-process setup commands), return its exit code.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from volact.cli.common import require


def register(groups: Any) -> None:
    parser: argparse.ArgumentParser = groups.add_parser(
        "demo",
        help="run authority, host, DNS and 30 machines on loopback (the case study)",
        description=(
            "Start a vendor authority and a key management host as separate processes on "
            "loopback (and a private BIND 9 when named is installed), then let simulated "
            "machines activate, retry, renew a week later, and one activate with a MAK. "
            "Every process it starts is stopped at the end, Ctrl-C included."
        ),
    )
    parser.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="work in DIR (new or empty; kept) instead of a temporary directory",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary directory at the end, to look around with volact commands",
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=30,
        metavar="N",
        help="how many simulated machines (default 30; the desktop threshold is 25)",
    )
    parser.add_argument(
        "--no-dns",
        action="store_true",
        help="do not start BIND 9 even if it is installed: machines use the host by address",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON summary on stdout; progress goes to stderr",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from volact.cli import main  # here, not at import: volact.cli imports this module

    # The demo starts `volact authority serve` and `volact host serve` as children:
    # say which extra is missing before starting anything, not in a child's error.
    require("rich", "fastapi", "uvicorn", "sqlalchemy", "prometheus_client")
    from volact.demo import DemoOptions, run_demo

    options = DemoOptions(
        directory=args.dir,
        keep=args.keep,
        clients=args.clients,
        dns=not args.no_dns,
        json=args.json,
    )
    return run_demo(options, main)
