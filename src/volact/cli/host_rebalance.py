"""``volact host rebalance``: ask a share of this host's clients to move, or all (drain).

``--share PERCENT`` writes ``rebalance.json`` in the home; a running host picks it
up within a second (no restart) and from then on asks that share of its clients,
in their signed renewal ticket, to re-discover another host. ``--share 100``
drains the host and also withdraws its SRV record (when publishing is set up), so
new clients do not find it (its address records stay: clients that cached its
name still reach it and are told to move); ``--stop`` ends the rebalance and publishes the host
again. Without an option it shows the progress (``told``, ``remaining``...).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from volact.cli.common import EXIT_ERROR, EXIT_OK, add_home, add_json, error, output, wall_clock
from volact.errors import ConfigurationError, VolactError
from volact.host import admin
from volact.host.dns.files import load_settings
from volact.host.dns.publisher import run_once, withdraw_srv
from volact.host.home import load_config
from volact.host.rebalance import Rebalance, share_from_percent
from volact.host.rebalance_file import load_rebalance, save_rebalance


def register(host_commands: Any) -> None:
    p: argparse.ArgumentParser = host_commands.add_parser(
        "rebalance",
        help="ask a share of this host's clients to move to other hosts (100: drain)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_home(p, "host")
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--share",
        type=_percent,
        metavar="PERCENT",
        help="percent of clients asked to move at their next renewal (0.01..100; 100 drains)",
    )
    what.add_argument("--stop", action="store_true", help="end the rebalance or drain")
    add_json(p)
    p.set_defaults(func=_rebalance)


def _percent(text: str) -> int:
    try:
        return share_from_percent(float(text))
    except (ValueError, ConfigurationError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _rebalance(args: argparse.Namespace) -> int:
    home = args.home
    changing = args.stop or args.share is not None
    try:
        before = load_rebalance(home)
        damaged = False
    except VolactError:
        if not changing:
            raise
        before, damaged = None, True  # replacing a damaged setting must not be blocked by it
    now = wall_clock()
    dns_results: list[dict[str, Any]] = []
    if changing:
        after = None if args.stop else Rebalance(args.share, now)
        load_config(home)  # refuses a directory that is not a host home
        save_rebalance(home, after)
        # A damaged setting may have been a drain: publishing again is harmless.
        was_draining = damaged or (before is not None and before.draining)
        if after is not None and after.draining and not was_draining:
            dns_results = _dns(home, "withdraw")
        elif was_draining and (after is None or not after.draining):
            dns_results = _dns(home, "publish")
    st = admin.status(home, now=now)
    rb = st["rebalance"]
    obj = {"rebalance": rb, "serving": st["serving"], "count": st["count"], "dns": dns_results}
    failed = [d for d in dns_results if not d["ok"]]
    code = EXIT_OK
    if failed:
        error(
            "DNS: could not "
            + "; ".join(f"{d['action']} in {d['domain']}: {d['detail']}" for d in failed)
            + " (the setting is saved; retry with `volact host dns publish|unpublish`)"
        )
        code = EXIT_ERROR
    output(args, obj, _text(rb, st["serving"], dns_results))
    return code


def _text(rb: dict[str, Any] | None, serving: bool, dns_results: list[dict[str, Any]]) -> str:
    if rb is None:
        lines = ["not rebalancing: every client renews here as usual"]
    else:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(rb["since"]))
        what = "draining (every client)" if rb["draining"] else f"{rb['share']:g} % of clients"
        lines = [
            f"rebalancing: {what} asked to move at renewal, since {when}",
            f"  told:      {rb['told']} clients told to move",
            f"  left:      {rb['left']} told clients have not come back",
            f"  remaining: {rb['remaining']} clients still renew here",
        ]
        if rb["empty"]:
            lines.append("  EMPTY: no client renews here any more; the host can be switched off")
    if not serving:
        lines.append("(the host is not running: the setting applies when it starts)")
    for d in dns_results:
        lines.append(f"  dns {d['action']} {d['domain']}: {'ok' if d['ok'] else 'FAILED'}")
    return "\n".join(lines)


def _dns(home: Any, action: str) -> list[dict[str, Any]]:
    """Withdraw (drain) or restore (stop) this host's SRV record, when DNS is set up."""
    from volact.cli.host_dns import _host_facts
    from volact.host.store import HostStore

    try:
        settings = load_settings(home)
    except VolactError:
        return []
    if not settings.configured or not settings.enabled:
        return []
    fqdn, port, addresses = _host_facts(home)
    with HostStore.open(home) as store:

        def event(kind: str, message: str) -> None:
            store.add_event(int(time.time()), kind, message)

        if action == "withdraw":
            outcomes = withdraw_srv(home, fqdn=fqdn, record_event=event)
        else:
            outcomes = run_once(
                home, action=action, fqdn=fqdn, port=port, addresses=addresses,
                record_event=event,
            )  # fmt: skip
    return [
        {"action": action, "domain": o.domain, "ok": o.ok, "detail": o.detail} for o in outcomes
    ]
