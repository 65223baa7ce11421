"""Helpers shared by the CLI modules: JSON output, errors, common arguments, files.

``volact.cli`` imports this module before every command, ``--version`` included:
it imports nothing beyond cheap standard-library modules at load time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from volact.errors import ConfigurationError, UsageError

if TYPE_CHECKING:
    from volact.profile import ProductProfile
from volact.text import printable

#: Exit statuses of every ``volact`` command (``docs/cli.md`` § Exit status).
EXIT_OK = 0
#: A runtime failure: the network, a refusal, a damaged home, a full disk.
EXIT_ERROR = 1
#: The command line is wrong: an unknown option, a missing argument, or a value that
#: is malformed or out of range (a port, an interval, a URL, a time, a mistyped key).
EXIT_USAGE = 2
#: ``client activate``: not activated yet, but still in the initial grace period
#: (the machine works and retries on its own). sysexits' EX_TEMPFAIL, "try again later",
#: so that a ``set -e`` script can tell it from a failure.
EXIT_GRACE = 75


def emit_json(obj: Any) -> None:
    """Print one JSON document on stdout (scripts read exactly this)."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def output(args: argparse.Namespace, obj: dict[str, Any], text: str) -> int:
    """``obj`` as JSON with ``--json``, else ``text`` for a person; exit status 0."""
    if args.json:
        emit_json(obj)
    else:
        write_text(text)
    return EXIT_OK


def write_text(text: str) -> None:
    """Print ``text`` for a person, with controls and bidi characters escaped.

    Every text output of the CLI goes through here (or through :func:`error`):
    workstation names and DNS data inside it are shown, never obeyed
    (:mod:`volact.text`). Fields that could hold a newline are escaped one by one
    by the command before (``printable``), since here newlines are kept.
    """
    sys.stdout.write(printable(text.rstrip("\n"), keep_newlines=True) + "\n")


def wall_clock() -> int:
    """The wall clock in Unix seconds: the CLI's only clock (the cores take ``now``)."""
    return int(time.time())


def error(message: str) -> None:
    """One line on stderr, prefixed so that a person sees where it came from."""
    # Newlines kept: a failed demo step quotes a log tail; controls are escaped.
    sys.stderr.write(f"volact: error: {printable(message, keep_newlines=True)}\n")


def http_url(text: str, option: str) -> str:
    """``text`` if it is an http(s) URL with a host; else a usage error naming ``option``."""
    from volact.exchanges import authority_url

    try:
        return authority_url(text, option)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None


def require(*modules: str) -> None:
    """Raise :class:`ModuleNotFoundError` for the first of ``modules`` not installed.

    For a command that needs an extra in a child process it starts: ``volact.cli``
    turns the error into a one-line answer naming the extra, before anything runs.
    """
    import importlib.util

    for name in modules:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def add_home(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--home", required=True, type=Path, metavar="DIR", help=f"the {what}'s home directory"
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} {path}: {exc.strerror}") from exc


def read_secret_file(path: Path, what: str) -> bytes:
    """A passphrase or secret from a file, without its trailing newline."""
    return read_bytes(path, what).rstrip(b"\r\n")


def load_profile(path: Path) -> ProductProfile:
    from volact.profile import ProductProfile  # here: `volact --version` needs no crypto

    return ProductProfile.loads(read_bytes(path, "product profile"))
