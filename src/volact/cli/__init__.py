"""The ``volact`` command: one sub-command group per part of the system.

``main(argv) -> int`` is the whole CLI, testable without a subprocess. Each group
lives in its own module with a ``register(subparsers)`` function. Errors from the
volact tree become one line on stderr and a non-zero exit; nothing imports this
package.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from volact import __version__
from volact.cli.common import EXIT_ERROR, EXIT_USAGE, error
from volact.errors import UsageError, VolactError

#: Exit status for an unexpected error (a bug), distinct from bad input (1) and usage (2).
EXIT_INTERNAL = 70

#: Command group → the module that registers it. Only the group a command names is
#: imported, so `volact host status` does not load the authority's SQLAlchemy.
GROUPS = {
    "authority": "volact.cli.authority",
    "host": "volact.cli.host",
    "client": "volact.cli.client",
    "mak": "volact.cli.mak",
    "bench": "volact.cli.bench",
    "demo": "volact.cli.demo",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser for every group, or only for group ``only``."""
    parser = argparse.ArgumentParser(
        prog="volact",
        description="Open volume activation: authority, key management host and client.",
    )
    parser.add_argument("--version", action="version", version=f"volact {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for name, module in GROUPS.items():
        if only is None or name == only:
            importlib.import_module(module).register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv``; return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(first if first in GROUPS else None)
    argv = args_list
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
    except Exception as exc:
        # A bug, not bad input: say so in one line unless asked for the traceback.
        if os.environ.get("VOLACT_DEBUG"):
            raise
        error(
            f"internal error ({type(exc).__name__}: {exc}); this is a bug in volact: "
            "please report it with the output of the same command run with VOLACT_DEBUG=1"
        )
        return EXIT_INTERNAL
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
