"""`volact host token create|list|revoke`: access tokens for the host's console.

``create`` prints the new token alone on its last line (or ``{"token": ...}``
with ``--json``): it is shown once and only its hash is kept. Reference:
``docs/console.md``.
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from volact.cli.common import add_home, add_json, output, wall_clock
from volact.host import tokens
from volact.host.home import load_config


def register(host_commands: Any) -> None:
    """Add the ``token`` sub-command to ``volact host``'s sub-parsers."""
    p: argparse.ArgumentParser = host_commands.add_parser(
        "token", help="create, list or revoke access tokens for the console"
    )
    sub = p.add_subparsers(dest="token_command", metavar="COMMAND", required=True)

    c = sub.add_parser("create", help="create a token (printed once, stored hashed)")
    add_home(c, "host")
    c.add_argument("--name", default="console", help="a label to recognise it by (default console)")
    add_json(c)
    c.set_defaults(func=_create)

    c = sub.add_parser("list", help="list tokens (ids and names, never the tokens)")
    add_home(c, "host")
    add_json(c)
    c.set_defaults(func=_list)

    c = sub.add_parser("revoke", help="revoke a token by id (sessions made with it end)")
    add_home(c, "host")
    c.add_argument("id", metavar="ID", help="the token's id, from `volact host token list`")
    add_json(c)
    c.set_defaults(func=_revoke)


def _create(args: argparse.Namespace) -> int:
    load_config(args.home)  # a clear error when this is not a host home
    record, token = tokens.create(args.home, args.name, now=wall_clock())
    return output(
        args,
        {"token": token, **record.public()},
        f"token {record.id} ({record.name}) created; it is shown only now:\n{token}",
    )


def _list(args: argparse.Namespace) -> int:
    load_config(args.home)
    records = tokens.load(args.home)
    lines = [f"{r.id}  {_iso(r.created_at)}  {r.name!r}" for r in records]
    return output(args, {"tokens": [r.public() for r in records]}, "\n".join(lines) or "no tokens")


def _revoke(args: argparse.Namespace) -> int:
    load_config(args.home)
    record = tokens.revoke(args.home, args.id)
    return output(args, {"revoked": record.public()}, f"token {record.id} revoked")


def _iso(t: int) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
