"""The ``volact`` command: one sub-command group per part of the system.

``main(argv) -> int`` is the whole CLI, testable without a subprocess. Each group
lives in its own module with a ``register(subparsers)`` function, imported only when
the command line names that group: ``volact --version`` and ``volact --help`` import
no group at all (the one-line help of each group is kept here for that), and
``volact client status`` imports no host or authority code. Errors from the volact
tree become one line on stderr and a non-zero exit; so does a command that needs an
optional extra which is not installed (the message names the extra), and Ctrl-C at
any moment once this module runs (exit 130, no traceback). Nothing imports this
package.

This module (and ``cli.common``) imports only cheap standard-library modules at load
time: it is the first volact code every command runs, and a Ctrl-C during an import
here would come before :func:`run` can catch it.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from volact import __version__
from volact.cli.common import EXIT_ERROR, EXIT_USAGE, error

if TYPE_CHECKING:
    import argparse

#: Exit status for an unexpected error (a bug), distinct from bad input (1) and usage (2).
EXIT_INTERNAL = 70
#: Exit status after Ctrl-C (128 + SIGINT, what a shell reports for a killed command).
EXIT_INTERRUPTED = 130


class Group(NamedTuple):
    """A command group: the module that registers it, and its line in ``volact --help``."""

    module: str
    help: str


#: Command group → the module that registers it. Only the group a command names is
#: imported, so `volact host status` does not load the authority's SQLAlchemy. Each
#: help line must equal the one the module registers (tests/test_cli_main.py).
GROUPS = {
    "authority": Group(
        "volact.cli.authority",
        "the vendor's authority: root key, catalog, keys, activation service",
    ),
    "host": Group("volact.cli.host", "run and manage a key management host"),
    "client": Group(
        "volact.cli.client", "a machine's license: activate, status, discovery settings, agent"
    ),
    "mak": Group(
        "volact.cli.mak", "MAK proxy activation for machines that cannot reach the vendor"
    ),
    "bench": Group(
        "volact.cli.bench",
        "load generator: many simulated machines against a host on this machine",
    ),
    "demo": Group(
        "volact.cli.demo",
        "run authority, host, DNS and 30 machines on loopback (the case study)",
    ),
    "simulate": Group(
        "volact.cli.simulate", "simulate a fleet of hosts and clients for months, in seconds"
    ),
    "plan": Group("volact.cli.plan", "recommend how many hosts, and where, from simulations"),
}

#: Third-party module (top-level name) → the extra of pyproject.toml that installs it.
#: The base package is what an embedding client needs (PyNaCl, dnspython, httpx);
#: a command that imports one of these without its extra gets a one-line answer.
EXTRA_FOR_MODULE = {
    "prometheus_client": "host",
    "uvloop": "host",
    "fastapi": "authority",
    "starlette": "authority",
    "pydantic": "authority",
    "uvicorn": "authority",
    "sqlalchemy": "authority",
    "psycopg": "authority",
    "cryptography": "authority",
    "rich": "demo",
}

#: Groups that name one extra for anything they miss (the demo runs every role; the
#: host extra also brings FastAPI and uvicorn, for its console).
EXTRA_FOR_GROUP = {"demo": "demo", "host": "host"}

#: The test helpers (BIND, PostgreSQL, throw-away hosts) are not in the wheel.
TESTING_PACKAGE = "volact.testing"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser: group ``only`` in full, every other group as its one-line help.

    ``only=None`` gives the top level alone (enough for ``--version``, ``--help`` and
    usage errors); ``only="*"`` registers every group in full.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="volact",
        description="Open volume activation: authority, key management host and client.",
    )
    parser.add_argument("--version", action="version", version=f"volact {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for name, group in GROUPS.items():
        if only in (name, "*"):
            importlib.import_module(group.module).register(groups)
        else:
            # A stand-in that only lists the group: the command line did not name it,
            # so argparse will never parse with it.
            groups.add_parser(name, help=group.help, add_help=False)
    return parser


def missing_extra_message(
    exc: ModuleNotFoundError, command: str, group: str | None = None
) -> str | None:
    """What to tell a person when ``command`` failed on a module an extra installs."""
    name = exc.name or ""
    extra = EXTRA_FOR_MODULE.get(name.split(".")[0])
    if extra is not None:
        extra = EXTRA_FOR_GROUP.get(group or "", extra)
        return (
            f"`{command}` needs the optional '{extra}' dependencies ({name} is not "
            f"installed): pip install 'volact[{extra}]'"
        )
    if name == TESTING_PACKAGE or name.startswith(TESTING_PACKAGE + "."):
        return (
            f"`{command}` needs volact's test helpers ({name}), which the wheel does not "
            "ship: run it from a source checkout (make venv, then make demo or .venv/bin/volact)"
        )
    return None


def _command(args_list: Sequence[str], group: str | None) -> str:
    """``volact GROUP COMMAND`` for messages (the words a person typed, no options)."""
    words = [a for a in args_list if not a.startswith("-")][:2]
    return " ".join(["volact", *words]) if group else "volact"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv``; return the exit code."""
    from volact.errors import KeyFormatError, UnknownKeyError, UsageError, VolactError

    args_list = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args_list if not a.startswith("-")), None)
    group = first if first in GROUPS else None
    try:
        parser = build_parser(group)
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:  # argparse reports usage errors (and --version) itself
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        code: int = args.func(args)
    except UsageError as exc:
        error(str(exc))
        return EXIT_USAGE
    except UnknownKeyError as exc:  # well-formed, but nobody issued it: a refusal
        error(str(exc))
        return EXIT_ERROR
    except KeyFormatError as exc:  # a key typed on the command line is mistyped
        error(str(exc))
        return EXIT_USAGE
    except VolactError as exc:
        error(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc, _command(args_list, group), group)
        if message is None:
            if os.environ.get("VOLACT_DEBUG"):
                raise
            error(_bug(exc))
            return EXIT_INTERNAL
        error(message)
        return EXIT_ERROR
    except Exception as exc:
        if _interrupted_by(exc):
            # Code that failed while a Ctrl-C unwound it: the Ctrl-C is the cause.
            error("interrupted")
            return EXIT_INTERRUPTED
        # A bug, not bad input: say so in one line unless asked for the traceback.
        if os.environ.get("VOLACT_DEBUG"):
            raise
        error(_bug(exc))
        return EXIT_INTERNAL
    return code


def _interrupted_by(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt is in ``exc``'s cause or context chain."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


def _bug(exc: Exception) -> str:
    return (
        f"internal error ({type(exc).__name__}: {exc}); this is a bug in volact: "
        "please report it with the output of the same command run with VOLACT_DEBUG=1"
    )


def run() -> None:
    """Run the command line and exit (called by ``volact.__main__``, the entry point).

    Ctrl-C anywhere in :func:`main` (imports and parsing included) ends the command
    with exit status 130 and one line, never a traceback. Until here the entry point's
    handler ended the process quietly; from here Python's KeyboardInterrupt lets
    commands clean up. Once ``main`` returns, the default action of SIGINT is
    restored, so a Ctrl-C during the interpreter's shutdown ends the process by the
    signal (status 130 to a shell), silently.
    """
    # A process started with SIGINT ignored (a background job) keeps ignoring it.
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    try:
        try:
            if not ignored:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            code = main()
        finally:
            if not ignored:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
    except KeyboardInterrupt:
        error("interrupted")
        code = EXIT_INTERRUPTED
    sys.exit(code)
