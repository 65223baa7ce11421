"""The ``volact`` command: one sub-command group per part of the system.

``main(argv) -> int`` is the whole CLI, testable without a subprocess. Each group
lives in its own module with a ``register(subparsers)`` function. Errors from the
volact tree become one line on stderr and a non-zero exit; nothing imports this
package.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from volact import __version__
from volact.cli import authority, bench, client, demo, host, mak
from volact.cli.common import EXIT_ERROR, EXIT_USAGE, error
from volact.errors import UsageError, VolactError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="volact",
        description="Open volume activation: authority, key management host and client.",
    )
    parser.add_argument("--version", action="version", version=f"volact {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for module in (authority, host, client, mak, bench, demo):
        module.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv``; return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse reports usage errors itself
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code: int = args.func(args)
    except UsageError as exc:
        error(str(exc))
        return EXIT_USAGE
    except VolactError as exc:
        error(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
