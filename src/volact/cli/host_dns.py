"""`volact host dns`: set, show, publish and unpublish the host's DNS self-publishing.

Registered by ``cli/host.py`` through :func:`register`. The settings go to
``dns.json`` in the host home; the TSIG secret stays in its key file and is never
printed. ``publish``/``unpublish`` act once, now, and record host events like the
service's own publisher does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from volact.cli.common import EXIT_ERROR, EXIT_OK, emit_json, error, write_text
from volact.errors import ConfigurationError, UsageError
from volact.host import reload
from volact.host.config import check_publishable
from volact.host.dns import files as dns_files
from volact.host.dns import publisher
from volact.host.dns import status as dns_status
from volact.host.dns.outcomes import Outcome
from volact.host.dns.servers import ServerAddress
from volact.host.dns.settings import PublishDomain
from volact.host.home import load_config
from volact.text import printable


def _seconds(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of seconds")
    return int(text)


def _u16(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer 0..65535")
    return int(text)


def register(host_commands: Any) -> None:
    """Add the ``dns`` sub-command to ``volact host``'s sub-parsers."""
    p: argparse.ArgumentParser = host_commands.add_parser(
        "dns",
        help="DNS self-publishing (RFC 2136 + TSIG): settings, show, publish, unpublish",
        description=(
            "Without a sub-command: change the DNS publishing settings (only the options "
            "given), then show them. Sub-commands: show, publish, unpublish."
        ),
    )
    # dests differ from the sub-commands' (--home/--json) so argparse keeps both:
    # `host dns --home H show` and `host dns show --home H` both work.
    p.add_argument("--home", dest="set_home", type=Path, metavar="DIR", help="the host home")
    p.add_argument("--json", dest="set_json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--server",
        action="append",
        metavar="ADDR[:PORT]",
        help="DNS server that takes the updates (repeat for several; replaces the list)",
    )
    key = p.add_mutually_exclusive_group()
    key.add_argument(
        "--tsig-key-file",
        type=Path,
        metavar="FILE",
        help="BIND key file (tsig-keygen's output); read at publish time, never printed",
    )
    key.add_argument("--no-tsig", action="store_true", help="send unsigned updates")
    p.add_argument("--domain", metavar="DOMAIN", help="the host's own domain (default: FQDN's)")
    p.add_argument("--priority", type=_u16, metavar="N", help="SRV priority in the own domain")
    p.add_argument("--weight", type=_u16, metavar="N", help="SRV weight in the own domain")
    p.add_argument(
        "--publish-domain",
        action="append",
        metavar="DOMAIN[,PRIORITY,WEIGHT]",
        help="also publish into DOMAIN (repeatable; adds or updates the entry)",
    )
    p.add_argument(
        "--remove-publish-domain",
        action="append",
        metavar="DOMAIN",
        help="drop DOMAIN from the publish list (repeatable)",
    )
    p.add_argument("--ttl", type=_seconds, metavar="SECONDS", help="TTL of the records")
    p.add_argument(
        "--address",
        action="append",
        metavar="IP",
        help="A/AAAA to publish (repeatable; replaces the list; default: listen addresses)",
    )
    p.add_argument(
        "--clear-addresses", action="store_true", help="publish the listen addresses again"
    )
    p.add_argument("--fqdn", metavar="NAME", help="publish under NAME, not the host's FQDN")
    p.add_argument("--label", metavar="_SERVICE._tcp", help="override the profile's DNS label")
    p.add_argument("--retry-initial", type=_seconds, metavar="SECONDS", help="first retry delay")
    p.add_argument("--retry-max", type=_seconds, metavar="SECONDS", help="longest retry delay")
    p.add_argument(
        "--republish-interval", type=_seconds, metavar="SECONDS", help="republish period"
    )
    onoff = p.add_mutually_exclusive_group()
    onoff.add_argument(
        "--enable",
        dest="enable",
        action="store_true",
        default=None,
        help="publish when the service starts and every republish interval",
    )
    onoff.add_argument(
        "--disable", dest="enable", action="store_false", help="stop publishing (keeps settings)"
    )
    p.set_defaults(func=_configure, dns_command=None)

    sub = p.add_subparsers(dest="dns_command", metavar="SUBCOMMAND")
    for name, func, text in (
        ("show", _show, "print the DNS settings and the last outcome per domain"),
        ("publish", _publish, "publish this host's records now, in every domain"),
        ("unpublish", _unpublish, "remove this host's own records now, from every domain"),
    ):
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("--home", type=Path, metavar="DIR", help="the host's home directory")
        s.add_argument("--json", action="store_true", help="print one JSON object")
        if name == "publish":
            s.add_argument(
                "--take-over",
                action="store_true",
                help="publish the FQDN even though another volact host id owns it (this host "
                "replaces that one): its ownership record and addresses are removed",
            )
        s.set_defaults(func=func)


#: The options that change settings: they belong to `host dns` without a sub-command.
_SETTING_OPTIONS = {
    "server": "--server",
    "tsig_key_file": "--tsig-key-file",
    "no_tsig": "--no-tsig",
    "domain": "--domain",
    "priority": "--priority",
    "weight": "--weight",
    "publish_domain": "--publish-domain",
    "remove_publish_domain": "--remove-publish-domain",
    "ttl": "--ttl",
    "address": "--address",
    "clear_addresses": "--clear-addresses",
    "fqdn": "--fqdn",
    "label": "--label",
    "retry_initial": "--retry-initial",
    "retry_max": "--retry-max",
    "republish_interval": "--republish-interval",
    "enable": "--enable/--disable",
}


def _sub_args(args: argparse.Namespace) -> tuple[Path, bool]:
    """Home and --json of a sub-command, given before or after its name."""
    command = f"volact host dns {args.dns_command}"
    # Unset is None, or False for the plain flags; --disable sets enable to False.
    given = [
        flag
        for dest, flag in _SETTING_OPTIONS.items()
        if (value := getattr(args, dest)) is not None and (dest == "enable" or value is not False)
    ]
    if given:
        raise UsageError(
            f"{command}: {', '.join(given)} change settings and cannot be combined with "
            f"'{args.dns_command}'; run `volact host dns --home DIR {given[0]} ...` first"
        )
    homes = {h for h in (args.home, args.set_home) if h is not None}
    if not homes:
        raise UsageError(f"{command}: --home DIR is required")
    if len(homes) > 1:
        raise UsageError(f"{command}: --home is given twice with different directories")
    return homes.pop(), bool(args.json or args.set_json)


def _configure(args: argparse.Namespace) -> int:
    home: Path | None = args.set_home
    if home is None:
        raise UsageError("volact host dns: --home DIR is required")
    settings = dns_files.load_settings(home)
    changes: dict[str, Any] = {}
    if args.server:
        changes["servers"] = tuple(ServerAddress.parse(s) for s in args.server)
    if args.tsig_key_file is not None:
        path = args.tsig_key_file.expanduser().resolve()
        dns_files.read_key_file(path)  # fail now, not at 3 a.m. when the service publishes
        changes["tsig_key_file"] = str(path)
    if args.no_tsig:
        changes["tsig_key_file"] = None
    for name in ("domain", "priority", "weight", "ttl", "fqdn", "label"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    for name in ("retry_initial", "retry_max", "republish_interval"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    if args.clear_addresses:
        changes["addresses"] = ()
    if args.address:
        changes["addresses"] = tuple(a.strip() for a in args.address)
    if args.enable is not None:
        changes["enabled"] = args.enable
    settings = dataclasses.replace(settings, **changes)
    if args.remove_publish_domain:
        settings = settings.without_publish(args.remove_publish_domain)
    if args.publish_domain:
        settings = settings.with_publish([PublishDomain.parse(d) for d in args.publish_domain])
    if settings.enabled and not settings.configured:
        raise ConfigurationError(
            "cannot enable DNS publishing without a server: add --server ADDR[:PORT]"
        )
    if settings.enabled:
        check_publishable(settings.fqdn or load_config(home).fqdn)
    dns_files.save_settings(home, settings)
    code = _print_status(home, args.set_json)
    # The running host publishes with the new settings now (SIGHUP), or is told to.
    sys.stderr.write(f"volact: {reload.notify(home).text()}\n")
    return code


def _show(args: argparse.Namespace) -> int:
    home, as_json = _sub_args(args)
    if not home.is_dir():
        raise ConfigurationError(f"host home {home} does not exist")
    return _print_status(home, as_json)


def _print_status(home: Path, as_json: bool) -> int:
    st = dns_status.status(home)
    if as_json:
        emit_json(st)
        return EXIT_OK
    lines = [
        f"DNS publishing: {'enabled' if st.get('enabled') else 'disabled'}"
        + ("" if st.get("configured") else " (no server set)"),
    ]
    if "error" in st:
        lines.append(f"  error: {st['error']}")
    else:
        key = st["tsig_key"]
        if key is None:
            key_text = "none (unsigned updates)"
        elif "error" in key:
            key_text = f"{key['file']} (unreadable: {key['error']})"
        else:
            key_text = f"{key['name']} ({key['algorithm']}) from {key['file']}"
        lines += [
            f"  servers:   {', '.join(st['servers']) or '-'}",
            f"  TSIG key:  {key_text}",
            f"  FQDN:      {st['fqdn'] or '-'}",
            f"  label:     {st['label']}",
            f"  TTL:       {st['ttl']} s",
            f"  addresses: {', '.join(st['addresses']) or 'the listen addresses'}",
            f"  retry:     {st['retry_initial']} s doubling to {st['retry_max']} s; "
            f"republish every {st['republish_interval']} s",
        ]
        for d in st["domains"]:
            when = d["last_ok"]
            state = (
                f"published {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(when))} UTC"
                if d["published"] and when
                else "not published"
                if d["published"] is False
                else "never published"
            )
            if d["last_error"]:
                state += f"; last error: {d['last_error']}"
            lines.append(
                f"  {d['domain']} (priority {d['priority']}, weight {d['weight']}): {state}"
            )
    write_text("\n".join(lines))
    return EXIT_OK


def _host_facts(home: Path) -> tuple[str, int, list[str]]:
    """FQDN, port and listen addresses: from the running service if any, else the config."""
    from volact.host.config import SERVE_FILE, parse_listen
    from volact.host.home import load_config

    cfg = load_config(home)
    try:
        serve = json.loads((home / SERVE_FILE).read_text())
        addresses = [str(a) for a in serve["addresses"]]
        ports = [int(p) for p in serve["ports"]]
        if addresses and ports:
            return cfg.fqdn, ports[0], addresses
    except (OSError, ValueError, KeyError, TypeError):
        pass
    listen = [parse_listen(a, cfg.port) for a in cfg.listen]
    port = listen[0][1] if listen else cfg.port
    return cfg.fqdn, port, [h for h, _ in listen]


def _refuse_unreachable_name(home: Path, fqdn: str) -> None:
    """Never publish ``localhost`` (or a name with no dot) where it has somewhere to go."""
    settings = dns_files.load_settings(home)
    name = settings.fqdn or fqdn
    try:
        has_targets = bool(settings.targets(name))
    except ConfigurationError:
        return  # nowhere to publish: run_once says why, in its own words and JSON
    if has_targets:
        check_publishable(name)


def _run(args: argparse.Namespace, action: str) -> int:
    home, as_json = _sub_args(args)
    fqdn, port, addresses = _host_facts(home)
    if action == "publish":
        _refuse_unreachable_name(home, fqdn)
    from volact.host.store import HostStore

    store = HostStore.open(home)
    try:
        outcomes = publisher.run_once(
            home,
            action=action,
            fqdn=fqdn,
            port=port,
            addresses=addresses,
            record_event=lambda kind, msg: store.add_event(int(time.time()), kind, msg),
            take_over=bool(getattr(args, "take_over", False)),
        )
    finally:
        store.close()
    ok = bool(outcomes) and all(o.ok for o in outcomes)
    message: str | None = None
    if not outcomes:
        message = (
            f"nothing to {action}: the FQDN has no parent domain and the publish list is "
            "empty; set one with `volact host dns --home DIR --domain DOMAIN` "
            "(or --publish-domain DOMAIN)"
        )
    elif not ok:
        failed = ", ".join(o.domain for o in outcomes if not o.ok)
        message = f"{action} failed for {failed}; see the reasons above and `volact host dns show`"
    if as_json:
        emit_json(
            {
                "action": action,
                "ok": ok,
                "error": message,
                "results": [_outcome_json(o) for o in outcomes],
            }
        )
    else:
        for o in outcomes:
            write_text(f"{'ok' if o.ok else 'FAILED'}  {printable(o.message())}")
    if message is not None:
        error(message)
        return EXIT_ERROR
    return EXIT_OK


def _outcome_json(o: Outcome) -> dict[str, Any]:
    return {
        "domain": o.domain,
        "ok": o.ok,
        "detail": o.detail,
        "reason": o.kind.value if o.kind else None,
        "server": o.server,
    }


def _publish(args: argparse.Namespace) -> int:
    return _run(args, "publish")


def _unpublish(args: argparse.Namespace) -> int:
    return _run(args, "unpublish")
