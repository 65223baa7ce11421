"""`volact client`: see and steer one machine's license from a shell.

Every command works on a client home (``--home DIR``) made by ``init``. Commands
whose output a script reads take ``--json`` and print exactly one object; errors go
to stderr with a non-zero exit. The work is done by :class:`volact.client.api.Activation`;
this module only parses arguments and prints.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from volact.cli.common import (
    EXIT_ERROR,
    EXIT_GRACE,
    EXIT_OK,
    add_home,
    add_json,
    emit_json,
    error,
    load_profile,
    read_bytes,
)
from volact.client.api import Activation, Status, init_home, iso
from volact.client.srv import HostAddress
from volact.client.store import FILE_MODE, ClientStore
from volact.errors import ConfigurationError, UsageError
from volact.exchanges import MakResponse, authority_url, dumps
from volact.files import write_atomic
from volact.text import printable


def _add_nameserver(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nameserver",
        action="append",
        default=[],
        metavar="ADDR[:PORT]",
        help="ask this DNS server instead of the system's (repeatable; [V6]:PORT for IPv6)",
    )


def _add_clock_offset(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--clock-offset",
        type=int,
        default=0,
        metavar="SECONDS",
        help="act as if the time were SECONDS later (demos and the README's simulated "
        "week, with `volact host serve --clock-offset`); default 0",
    )


def _add_authority(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--authority",
        metavar="URL",
        type=_url,
        help="the vendor's authority for MAK activation online",
    )


def _url(text: str) -> str:
    """An option's http(s) URL, checked while parsing: a bad one is a usage error (2)."""
    try:
        return authority_url(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _host_address(text: str) -> str:
    """A ``HOST[:PORT]`` option, checked while parsing: a bad one is a usage error (2)."""
    try:
        HostAddress.parse(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def register(groups: Any) -> None:
    parser: argparse.ArgumentParser = groups.add_parser(
        "client",
        help="a machine's license: activate, status, discovery settings, agent",
        description="See and steer one machine's license (the client library's CLI).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("init", help="create a client home with a new machine id (CMID)")
    add_home(p, "client")
    p.add_argument("--profile", required=True, type=Path, help="the vendor's product profile")
    p.add_argument(
        "--sku", metavar="NAME_OR_ID", help="install this SKU's setup key (GVLK) from the profile"
    )
    p.add_argument(
        "--vm", choices=("yes", "no"), help="report as a virtual machine (default: detect)"
    )
    p.add_argument(
        "--workstation", metavar="NAME", help="the name sent to hosts (default: hostname)"
    )
    p.add_argument("--force", action="store_true", help="start again in an existing home")
    add_json(p)
    p.set_defaults(func=_init)

    p = sub.add_parser("install-key", help="install a product key (GVLK or MAK)")
    add_home(p, "client")
    p.add_argument("key", metavar="KEY", help="XXXXX-XXXXX-XXXXX-XXXXX-XXXXX")
    p.add_argument("--sku", metavar="NAME_OR_ID", help="the SKU a MAK activates")
    add_json(p)
    p.set_defaults(func=_install_key)

    p = sub.add_parser(
        "activate",
        help="activate (or renew) now; exit 0 when activated, 75 when still in grace",
    )
    add_home(p, "client")
    _add_nameserver(p)
    _add_authority(p)
    _add_clock_offset(p)
    add_json(p)
    p.set_defaults(func=_activate)

    p = sub.add_parser("status", help="license state, host, counts, intervals, next action")
    add_home(p, "client")
    _add_nameserver(p)
    _add_clock_offset(p)
    add_json(p)
    p.set_defaults(func=_status)

    p = sub.add_parser("set-host", help="always use this host (wins over DNS discovery)")
    add_home(p, "client")
    p.add_argument("host", metavar="HOST[:PORT]", type=_host_address,
                   help="name or address; [V6]:PORT for IPv6")  # fmt: skip
    add_json(p)
    p.set_defaults(func=lambda a: _setting(a, lambda act: act.set_host(a.host)))

    p = sub.add_parser("clear-host", help="forget the manual host: discover through DNS")
    add_home(p, "client")
    add_json(p)
    p.set_defaults(func=lambda a: _setting(a, lambda act: act.clear_host()))

    p = sub.add_parser("set-domain", help="look for SRV records in this DNS domain")
    add_home(p, "client")
    p.add_argument("domain", metavar="DOMAIN")
    add_json(p)
    p.set_defaults(func=lambda a: _setting(a, lambda act: act.set_domain(a.domain)))

    p = sub.add_parser("clear-domain", help="look in the machine's DNS search domains again")
    add_home(p, "client")
    add_json(p)
    p.set_defaults(func=lambda a: _setting(a, lambda act: act.set_domain(None)))

    p = sub.add_parser("host-caching", help="go back to the last host (on) or re-read DNS (off)")
    add_home(p, "client")
    p.add_argument("mode", choices=("on", "off"))
    add_json(p)
    p.set_defaults(func=lambda a: _setting(a, lambda act: act.set_host_caching(a.mode == "on")))

    p = sub.add_parser("set-vm", help="whether to report this machine as virtual")
    add_home(p, "client")
    p.add_argument("vm", choices=("yes", "no"))
    add_json(p)
    p.set_defaults(func=lambda a: _setting(a, lambda act: act.set_vm(a.vm == "yes")))

    p = sub.add_parser("rearm", help="new CMID for a machine made from an image; drops activation")
    add_home(p, "client")
    add_json(p)
    p.set_defaults(func=lambda a: _setting(a, lambda act: act.rearm()))

    p = sub.add_parser("events", help="the client's event log")
    add_home(p, "client")
    p.add_argument("--limit", type=int, default=50, help="the last N events (default 50)")
    add_json(p)
    p.set_defaults(func=_events)

    p = sub.add_parser("agent", help="keep the license: act when due, until SIGINT/SIGTERM")
    add_home(p, "client")
    _add_nameserver(p)
    _add_authority(p)
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N steps")
    p.add_argument("--once", action="store_true", help="one step (act if due), then exit")
    _add_clock_offset(p)
    p.set_defaults(func=_agent)

    p = sub.add_parser(
        "refresh-revocations",
        help="fetch the vendor's revocation list from the authority; keep it if newer",
    )
    add_home(p, "client")
    p.add_argument(
        "--authority",
        metavar="URL",
        type=_url,
        help="the vendor's authority (default: the product profile's authority_url)",
    )
    add_json(p)
    p.set_defaults(func=_refresh_revocations)

    p = sub.add_parser(
        "doctor", help="walk the chain to a host and name the first broken link, with its fix"
    )
    add_home(p, "client")
    _add_nameserver(p)
    add_json(p)
    p.set_defaults(func=_doctor)

    p = sub.add_parser("mak-request", help="write this machine's MAK request file (offline)")
    add_home(p, "client")
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.set_defaults(func=_mak_request)

    p = sub.add_parser("mak-apply", help="apply the authority's MAK response file (offline)")
    add_home(p, "client")
    p.add_argument("file", type=Path, metavar="FILE")
    add_json(p)
    p.set_defaults(func=_mak_apply)


# ---- helpers -----------------------------------------------------------------------


def _open(args: argparse.Namespace) -> Activation:
    store = ClientStore(args.home)
    if not store.exists():
        raise ConfigurationError(
            f"{args.home} is not a client home: run `volact client init --home {args.home} "
            "--profile FILE`"
        )
    nameservers: Sequence[HostAddress] | None = None
    if getattr(args, "nameserver", None):
        nameservers = [HostAddress.parse(n, default_port=53) for n in args.nameserver]
    offset = int(getattr(args, "clock_offset", 0) or 0)
    return Activation(
        store.load_profile(),
        args.home,
        nameservers=nameservers,
        authority_url=getattr(args, "authority", None),
        clock=(lambda: time.time() + offset) if offset else time.time,
    )


_HUMAN = (
    ("state", "state"), ("activated", "activated"), ("sku_name", "product"), ("sku", "SKU"),
    ("key", "key"), ("cmid", "CMID"), ("host", "host used"), ("count", "count"),
    ("required_count", "required count"), ("result", "last result"),
    ("activation_interval", "activation interval (min)"),
    ("renewal_interval", "renewal interval (min)"), ("valid_until", "valid until"),
    ("grace_until", "grace until"), ("next_action_at", "next action"),
    ("last_error", "last error"), ("manual_host", "manual host"), ("domain", "domain"),
    ("host_caching", "host caching"), ("cached_host", "cached host"),
    ("moving_from", "moving away from"), ("vm", "virtual machine"),
    ("revocation_sequence", "revocation list"),
)  # fmt: skip


def _print_status(status: Status, as_json: bool) -> None:
    obj = status.to_json()
    if as_json:
        emit_json(obj)
        return
    width = max(len(label) for _, label in _HUMAN)
    for name, label in _HUMAN:
        value = obj[name]
        if name == "valid_until" and obj["permanent"]:
            value = "forever"  # a MAK activation: what `activate` says too
        elif value is None or (value is False and name not in ("activated", "vm", "host_caching")):
            value = "-"
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        sys.stdout.write(f"{label + ':':<{width + 2}}{printable(str(value))}\n")


# ---- commands ----------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    state = init_home(
        profile,
        args.home,
        sku=args.sku,
        vm=None if args.vm is None else args.vm == "yes",
        workstation=args.workstation,
        now=int(time.time()),
        force=args.force,
    )
    status = _open(args).status()
    if args.json:
        _print_status(status, True)
    else:
        what = f" with {status.sku_name}" if status.sku_name else " (no key: run install-key)"
        sys.stdout.write(f"client home {args.home} created{what}; CMID {state.cmid}\n")
    return EXIT_OK


def _install_key(args: argparse.Namespace) -> int:
    status = _open(args).install_key(args.key, sku=args.sku)
    if args.json:
        _print_status(status, True)
    else:
        how = "a host on the network" if status.key_kind == "gvlk" else "the vendor's authority"
        sys.stdout.write(
            f"installed {status.key} for {status.sku_name}; activation goes through {how}\n"
        )
    return EXIT_OK


def _activate(args: argparse.Namespace) -> int:
    status = _open(args).activate()
    if args.json:
        _print_status(status, True)
    if status.activated:
        if not args.json:
            until = "forever" if status.permanent else iso(status.valid_until)
            sys.stdout.write(
                f"activated ({status.sku_name}) by {printable(status.host or 'the authority')}; "
                f"valid until {until}\n"
            )
        if status.last_error:  # a failed renewal of a machine that is still licensed
            error(f"renewal failed, still licensed: {status.last_error}")
        return EXIT_OK
    if status.last_error:
        reason = status.last_error
    elif status.result == "count_too_low":
        reason = (
            f"count too low: the host has counted {status.count} of the "
            f"{status.required_count} machines needed; the machine stays in "
            f"{status.state} and retries at {iso(status.next_action_at)}"
        )
    else:
        reason = f"not activated (last result: {status.result})"
    error(reason)
    # Still in grace: the product works and the machine retries on its own, which a
    # script must be able to tell from a failure (docs/cli.md § Exit status).
    return EXIT_GRACE if status.state == "grace" else EXIT_ERROR


def _status(args: argparse.Namespace) -> int:
    _print_status(_open(args).status(), args.json)
    return EXIT_OK


def _setting(args: argparse.Namespace, change: Any) -> int:
    status: Status = change(_open(args))
    if args.json:
        _print_status(status, True)
    else:
        sys.stdout.write(f"{args.command}: done\n")
    return EXIT_OK


def _events(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    events = _open(args).events(args.limit)
    if args.json:
        emit_json({"events": events})
        return EXIT_OK
    for e in events:
        rest = " ".join(f"{k}={v}" for k, v in sorted(e.items()) if k not in ("time", "t", "event"))
        line = f"{e.get('time', '?')} {e.get('event', '?')} {rest}"
        sys.stdout.write(printable(line) + "\n")  # host names and reasons come from DNS
    return EXIT_OK


def _agent(args: argparse.Namespace) -> int:
    act = _open(args)
    max_steps = 1 if args.once else args.max_steps
    if max_steps is not None and max_steps < 1:
        raise UsageError("--max-steps must be at least 1")
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def log(status: Status, acted: bool) -> None:
        what = "attempted" if acted else "idle"
        sys.stdout.write(
            f"{iso(status.now)} {what}: state={status.state} result={status.result or '-'} "
            f"host={printable(status.host or '-')} count={status.count}/{status.required_count} "
            f"next={iso(status.next_action_at) or '-'}"
            + (f" error={printable(status.last_error)}" if acted and status.last_error else "")
            + "\n"
        )
        sys.stdout.flush()

    try:
        act.run_schedule(stop=stop, on_step=log, max_steps=max_steps)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return EXIT_OK


def _refresh_revocations(args: argparse.Namespace) -> int:
    result = _open(args).refresh_revocations(args.authority)
    if args.json:
        emit_json(result.to_json())
    elif result.updated:
        was = "none" if result.previous is None else f"sequence {result.previous}"
        sys.stdout.write(f"revocation list updated to sequence {result.sequence} (was {was})\n")
    elif result.offered is None:
        held = "none" if result.sequence is None else f"sequence {result.sequence}"
        sys.stdout.write(f"the authority has no revocation list; in force: {held}\n")
    else:
        sys.stdout.write(
            f"revocation list unchanged: the authority's sequence {result.offered} is not "
            f"newer than sequence {result.sequence}\n"
        )
    return EXIT_OK


def _mak_request(args: argparse.Namespace) -> int:
    req = _open(args).mak_request()
    # The request carries the MAK in full: owner-only, like the home it comes from.
    write_atomic(args.out, dumps(req), mode=FILE_MODE, error=ConfigurationError)
    sys.stderr.write(f"wrote {args.out}: take it to a connected machine (volact mak ...)\n")
    return EXIT_OK


def _mak_apply(args: argparse.Namespace) -> int:
    response = MakResponse.from_json(read_bytes(args.file, "MAK response file"))
    status = _open(args).mak_apply(response)
    if args.json:
        _print_status(status, True)
    else:
        sys.stdout.write(f"activated by MAK ({status.sku_name}): permanent\n")
    return EXIT_OK


def _doctor(args: argparse.Namespace) -> int:
    from volact import doctor
    from volact.client.doctor import steps

    nameservers = [HostAddress.parse(n, default_port=53) for n in args.nameserver] or None
    outcomes = doctor.walk(steps(args.home, nameservers=nameservers))
    obj = doctor.report(outcomes)
    if args.json:
        emit_json(obj)
    else:
        sys.stdout.write(printable(doctor.text(outcomes), keep_newlines=True) + "\n")
    return EXIT_OK if obj["ok"] else EXIT_ERROR
