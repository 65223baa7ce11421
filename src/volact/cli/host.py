"""`volact host`: create, activate, run and inspect a key management host.

Commands: ``init``, ``install-key``, ``activate``, ``serve``, ``status``, ``set``,
``events``, ``report activity|licensing``, and ``dns`` (from :mod:`volact.cli.host_dns`).
Reference: ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any

from volact.addresses import normalize_name
from volact.cli import host_dns, host_rebalance, host_token
from volact.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    add_home,
    add_json,
    error,
    output,
    read_bytes,
    require,
    wall_clock,
)
from volact.errors import ConfigurationError, UsageError, VolactError
from volact.exchanges import HostActivationResponse, authority_url, dumps
from volact.files import write_atomic
from volact.host import activation, admin, reload
from volact.host.config import check_interval, check_publishable
from volact.host.home import SECRET_MODE, load_config, monitor_group, save_config, secure_home
from volact.text import printable


def register(groups: Any) -> None:
    parser: argparse.ArgumentParser = groups.add_parser(
        "host", help="run and manage a key management host"
    )
    sub = parser.add_subparsers(dest="host_command", metavar="COMMAND", required=True)

    p = sub.add_parser("init", help="create a host home (host id, signing key, store)")
    add_home(p, "host")
    p.add_argument("--profile", required=True, type=Path, help="the vendor's product profile")
    p.add_argument("--fqdn", default=None, type=_fqdn,
                   help="the host's DNS name (default: this machine's)")
    p.add_argument("--port", type=_port, default=1688,
                   help="TCP port to serve on (default 1688)")  # fmt: skip
    p.add_argument("--monitor-group", metavar="GROUP",
                   help="members of GROUP may run status, alerts, report and events "
                        "(never read secrets); default: owner only")  # fmt: skip
    add_json(p)
    p.set_defaults(func=_init)

    p = sub.add_parser("install-key", help="install the host key from the vendor")
    add_home(p, "host")
    p.add_argument("key", metavar="KEY", help="the host key, XXXXX-XXXXX-XXXXX-XXXXX-XXXXX")
    add_json(p)
    p.set_defaults(func=_install_key)

    p = sub.add_parser("activate", help="activate the host with the vendor (online or by file)")
    add_home(p, "host")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--offline-request", type=Path, metavar="FILE",
                     help="write the activation request to FILE for the authority")  # fmt: skip
    how.add_argument("--offline-response", type=Path, metavar="FILE",
                     help="install the authority's response from FILE")  # fmt: skip
    how.add_argument("--authority", metavar="URL", type=_url,
                     help="activate online with the authority (http:// or https:// URL)")
    add_json(p)
    p.set_defaults(func=_activate)

    p = sub.add_parser("serve", help="serve activation requests until SIGTERM/SIGINT")
    add_home(p, "host")
    p.add_argument("--listen", action="append", default=[], metavar="ADDR[:PORT]",
                   help="address to listen on (repeatable; [::1]:1688 for IPv6; "
                        "default: all interfaces on the configured port)")  # fmt: skip
    p.add_argument("--clock-offset", type=int, default=0, metavar="SECONDS",
                   help="act as if the time were SECONDS later (demos and tests: let a "
                        "simulated week pass); default 0")
    p.add_argument("--bench", action="store_true",
                   help="serve `volact bench` only: a scratch store deleted on exit, no DNS; "
                        "the real count and events are never touched")  # fmt: skip
    p.add_argument("--console", metavar="ADDR[:PORT]",
                   help="serve the web console and its API at http://ADDR:PORT/ (e.g. "
                        "127.0.0.1:8688; off by default; needs `volact host token create`)")
    p.add_argument("--metrics", metavar="ADDR[:PORT]",
                   help="serve Prometheus metrics at http://ADDR:PORT/metrics "
                        "(e.g. 127.0.0.1:9188; port 0 picks one, see serve.json)")  # fmt: skip
    p.set_defaults(func=_serve)

    p = sub.add_parser("status", help="show whether the host is activated, its count, settings")
    add_home(p, "host")
    add_json(p)
    p.set_defaults(func=_status)

    p = sub.add_parser("set", help="change intervals, port or VM policy")
    add_home(p, "host")
    p.add_argument("--activation-interval", type=_interval, metavar="MINUTES",
                   help="minutes between client retries (15..43200)")
    p.add_argument("--renewal-interval", type=_interval, metavar="MINUTES",
                   help="minutes between client renewals (15..43200)")
    p.add_argument("--port", type=_port)
    p.add_argument("--count-vms", choices=("yes", "no"))
    p.add_argument("--fqdn", type=_fqdn)
    p.add_argument("--max-connections", type=int, metavar="N",
                   help="connections served at once (default 1024)")
    p.add_argument("--max-connections-per-address", type=int, metavar="N",
                   help="connections one client address may hold (default 256; 0: no cap)")
    p.add_argument("--max-connections-per-network", type=int, metavar="N",
                   help="connections one IPv4 /24 or IPv6 /64 may hold (default 512; 0: no cap)")
    p.add_argument("--read-timeout", type=float, metavar="SECONDS",
                   help="time a client has to send its whole request (default 5)")
    p.add_argument("--max-machines", type=int, metavar="N",
                   help="machines the count may hold; more are refused (default 2000000)")
    p.add_argument("--new-machines-per-hour", type=int, metavar="N",
                   help="machines new to the count one /24 or /64 may add per hour "
                        "(default 1000; 0: no limit; loopback is never limited)")  # fmt: skip
    p.add_argument("--monitor-group", metavar="GROUP|none",
                   help="let GROUP run the read-only commands (none: owner only); "
                        "re-applies the home's file modes")  # fmt: skip
    add_json(p)
    p.set_defaults(func=_set)

    p = sub.add_parser("events", help="show the event log")
    add_home(p, "host")
    p.add_argument("--since", metavar="ISO8601", help="only events at or after this time")
    p.add_argument("--limit", type=_positive, default=50, help="at most this many (default 50)")
    p.add_argument("--before", type=_positive, metavar="ID",
                   help="page back: only events older than this id (next_before in --json)")
    p.add_argument("--cmid", metavar="UUID", help="only requests from this machine")
    p.add_argument("--workstation", metavar="TEXT",
                   help="only requests whose workstation name contains TEXT")
    p.add_argument("--result", metavar="RESULT", help="only requests with this result (e.g. ok)")
    add_json(p)
    p.set_defaults(func=_events)

    p = sub.add_parser("report", help="activity or licensing-status report")
    p.add_argument("kind", choices=("activity", "licensing"))
    add_home(p, "host")
    p.add_argument("--days", type=_positive, default=30,
                   help="activity: days to cover (default 30)")  # fmt: skip
    p.add_argument(
        "--limit", type=_positive, default=100,
        help="licensing: clients listed, soonest to expire first (default 100)",
    )  # fmt: skip
    add_json(p)
    p.set_defaults(func=_report)

    p = sub.add_parser("alerts", help="what needs attention: activation, count, expiry, idle")
    add_home(p, "host")
    p.add_argument("--expiry-days", type=_positive, default=admin.EXPIRY_WARNING_DAYS,
                   metavar="DAYS", help="warn about clients expiring within DAYS (default 15)")
    p.add_argument("--idle-hours", type=_positive, default=admin.IDLE_HOURS, metavar="HOURS",
                   help="warn when no client asked for HOURS (default 24)")
    p.add_argument("--exit-code", action="store_true",
                   help="exit as a Nagios plugin: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN")
    add_json(p)
    p.set_defaults(func=_alerts)  # fmt: skip

    p = sub.add_parser("doctor", help="walk the chain and name the first broken link, with its fix")
    add_home(p, "host")
    add_json(p)
    p.set_defaults(func=_doctor)

    host_dns.register(sub)
    host_rebalance.register(sub)
    host_token.register(sub)



def _fqdn(text: str) -> str:
    try:
        return normalize_name(text, "the host name")
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return int(text)


def _interval(text: str) -> int:
    try:
        return check_interval(int(text), "the interval")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes") from None
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _url(text: str) -> str:
    try:
        return authority_url(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return n



def _init(args: argparse.Namespace) -> int:
    import socket

    profile = read_bytes(args.profile, "product profile")
    fqdn = args.fqdn or socket.getfqdn() or "localhost"
    warning = None
    if args.fqdn is None:
        try:
            check_publishable(fqdn)
        except ConfigurationError:
            warning = (
                f"this machine's name is {fqdn!r}, not a fully qualified domain name: DNS "
                f"publishing will be refused until you set one (`volact host set --home "
                f"{args.home} --fqdn kms1.example.com`)"
            )
    cfg = activation.init_home(
        args.home, profile, fqdn=fqdn, port=args.port, monitor_group=args.monitor_group
    )
    obj = {"home": str(args.home), "host_id": cfg.host_id.hex(), "fqdn": cfg.fqdn,
           "port": cfg.port, "warning": warning}  # fmt: skip
    if warning:
        sys.stderr.write(f"volact: warning: {printable(warning)}\n")
    return output(
        args, obj,
        f"host {cfg.host_id.hex()} created in {args.home} ({cfg.fqdn}, port {cfg.port})\n"
        f"next: volact host install-key --home {args.home} KEY",
    )  # fmt: skip


def _install_key(args: argparse.Namespace) -> int:
    key = activation.install_key(args.home, args.key)
    return output(
        args, {"installed": True, "host_key": key.masked},
        f"host key {key.masked} installed\n"
        f"next: volact host activate --home {args.home} --authority URL "
        "(or --offline-request FILE)",
    )  # fmt: skip


def _activate(args: argparse.Namespace) -> int:
    cfg = load_config(args.home)
    if args.offline_request is not None:
        req = activation.activation_request(args.home, cfg)
        # The request holds the host key in full: owner-only, like product-key.txt.
        write_atomic(args.offline_request, dumps(req), mode=SECRET_MODE)
        return output(
            args, {"request": str(args.offline_request), "host_id": cfg.host_id.hex()},
            f"activation request written to {args.offline_request}; take it to the "
            "vendor's authority and bring back the response file",
        )  # fmt: skip
    if args.offline_response is not None:
        resp = HostActivationResponse.from_json(
            read_bytes(args.offline_response, "activation response")
        )
        activation.install_license(args.home, cfg, resp)
    else:
        activation.activate_online(args.home, cfg, args.authority)
    st = admin.status(args.home, now=wall_clock())
    return output(
        args, {"activated": st["activated"], "host_id": st["host_id"],
               "licensed_groups": st["licensed_groups"]},
        f"host {st['host_id']} activated for {', '.join(st['licensed_groups'])}",
    )  # fmt: skip


def _serve(args: argparse.Namespace) -> int:
    # The server imports prometheus_client only for --metrics: a host install that
    # lacks it is still named at once, not when metrics are first asked for.
    require("prometheus_client", "uvloop")
    from volact.host.server import serve

    stats = serve(
        args.home, args.listen, clock_offset=args.clock_offset, metrics=args.metrics,
        bench=args.bench,
        console=args.console,
    )  # fmt: skip
    sys.stdout.write(
        f"stopped: {stats.connections} connections, {stats.replies} replies, "
        f"{stats.malformed} malformed, {stats.timeouts} timed out, "
        f"{stats.refused_busy} refused over the cap\n"
    )
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    st = admin.status(args.home, now=wall_clock())
    lines = [
        f"host {st['host_id']} ({st['fqdn']})",
        f"  activated:   {'yes' if st['activated'] else 'no'} (license {st['license_state']}"
        + (f"; groups {', '.join(st['licensed_groups'])}" if st["licensed_groups"] else "")
        + ")",
        f"  count:       {st['count']} machines in the last 30 days "
        f"({st['vm_policy']}); {st['known_clients']} known",
        "  thresholds:  "
        + ", ".join(
            f"{g} {t}" + (" (met)" if st["groups_ready"].get(g) else "")
            for g, t in st["thresholds"].items()
        ),
        f"  port:        {st['port']}"
        + (f"; listen {', '.join(st['listen'])}" if st["listen"] else ""),
        "  serving:     "
        + (f"pid {st['pid']} on {', '.join(st['listening'])}" if st["serving"] else "no"),
        f"  intervals:   activation {st['activation_interval_minutes']} min, "
        f"renewal {st['renewal_interval_minutes']} min",
        "  requests:    "
        + (", ".join(f"{k} {v}" for k, v in sorted(st["requests_by_result"].items())) or "none"),
        f"  dns:         {_dns_line(st['dns'])}",
    ]
    rb = st.get("rebalance")
    if rb is not None:
        share = "draining" if rb["draining"] else f"{rb['share']:g} %"
        lines.append(
            f"  rebalance:   {share}; told {rb['told']}, remaining {rb['remaining']}"
            + ("; EMPTY: can be switched off" if rb["empty"] else "")
        )
    return output(args, st, "\n".join(lines))


def _dns_line(dns_state: dict[str, Any]) -> str:
    if not dns_state.get("enabled"):
        return "publishing off" + (
            f" ({printable(dns_state['error'])})" if dns_state.get("error") else ""
        )
    parts = []
    for d in dns_state.get("domains", []):
        if d.get("last_error"):
            parts.append(f"{d.get('domain')} failing: {printable(d['last_error'])}")
        else:
            parts.append(f"{d.get('domain')} " + ("published" if d.get("published") else "pending"))
    return "; ".join(parts) or "publishing on, no domain configured"


def _set(args: argparse.Namespace) -> int:
    cfg = load_config(args.home)
    changes: dict[str, Any] = {}
    if args.activation_interval is not None:
        changes["activation_interval"] = args.activation_interval
    if args.renewal_interval is not None:
        changes["renewal_interval"] = args.renewal_interval
    if args.port is not None:
        if not 1 <= args.port <= 65535:
            raise UsageError(f"--port must be 1..65535, not {args.port}")
        changes["port"] = args.port
    if args.count_vms is not None:
        changes["count_vms"] = args.count_vms == "yes"
    if args.fqdn is not None:
        changes["fqdn"] = args.fqdn
    for name in ("max_connections", "max_connections_per_address",
                 "max_connections_per_network", "read_timeout", "max_machines",
                 "new_machines_per_hour"):  # fmt: skip
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if not changes and args.monitor_group is None:
        raise UsageError("nothing to set: give at least one option (see --help)")
    try:
        new = cfg.with_changes(**changes)
    except ConfigurationError as exc:  # every value came from the command line
        raise UsageError(str(exc)) from None
    save_config(args.home, new)
    if args.monitor_group is not None:
        group = None if args.monitor_group == "none" else args.monitor_group
        secure_home(args.home, group)
        changes["monitor_group"] = group
    notice = reload.notify(args.home, changes)  # a running host applies it now (SIGHUP)
    obj = {"changed": sorted(changes), **notice.to_json(), **new.to_json(),
           "monitor_group": monitor_group(args.home)}  # fmt: skip
    return output(args, obj, f"saved: {', '.join(sorted(changes))}; {notice.text()}")


def _parse_time(text: str) -> int:
    try:
        t = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since {text!r} is not an ISO 8601 time (e.g. 2026-01-31T12:00:00Z)"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.UTC)
    return int(t.timestamp())


def _iso(t: int) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _events(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    since = _parse_time(args.since) if args.since else None
    obj = admin.events(
        args.home, since=since, limit=args.limit, before=args.before,
        cmid=admin.parse_cmid(args.cmid) if args.cmid is not None else None,
        workstation=args.workstation,
        result=admin.parse_result(args.result) if args.result is not None else None,
    )  # fmt: skip
    lines = []
    for e in obj["events"]:
        if e["kind"] == "request":
            lines.append(
                f"{_iso(e['time'])} {e['address']} \"{printable(e['workstation'] or '')}\" "
                f"{e['cmid']} "
                f"{'vm ' if e['vm'] else ''}-> {e['result']} (count {e['count']})"
            )
        else:
            lines.append(f"{_iso(e['time'])} {e['kind']}: {printable(e.get('message') or '')}")
    return output(args, obj, "\n".join(lines) or "no events")


def _report(args: argparse.Namespace) -> int:
    now = wall_clock()
    if args.kind == "activity":
        obj = admin.activity(args.home, days=args.days, now=now)
        lines = [f"{'day':<12}{'product':<40}{'activations':>12}{'renewals':>10}{'refusals':>10}"]
        lines += [
            f"{r['day']:<12}{printable(r['product']):<40}{r['activations']:>12}"
            f"{r['renewals']:>10}{r['refusals']:>10}"
            for r in obj["rows"]
        ]
        return output(args, obj, "\n".join(lines))
    obj = admin.licensing(args.home, now=now, limit=args.limit)
    s = obj["summary"]
    lines = [
        f"{s['known_clients']} known clients: {s['licensed']} licensed "
        f"({s['expiring']} expire within {s['expiring_within_days']} days), "
        f"{s['expired']} expired, {s['never_activated']} never activated",
    ]
    lines += [
        f"  {printable(c['workstation'] or ''):<20} {c['cmid']} {c['state']:<16} "
        f"{c['days_left']:>4} days left, "
        f"last contact {c['days_since_contact']} days ago"
        for c in obj["clients"]
    ]
    return output(args, obj, "\n".join(lines))


#: ``host alerts --exit-code``: the Nagios plugin convention, which monitoring
#: systems (Nagios, Icinga, Zabbix, Checkmk, Sensu) read.
NAGIOS_OK, NAGIOS_WARNING, NAGIOS_CRITICAL, NAGIOS_UNKNOWN = 0, 1, 2, 3


def _alerts(args: argparse.Namespace) -> int:
    try:
        obj = admin.alerts(
            args.home, now=wall_clock(), expiry_days=args.expiry_days,
            idle_hours=args.idle_hours,
        )  # fmt: skip
    except VolactError as exc:
        if not args.exit_code:
            raise
        # The check itself could not run (no home, no permission, a damaged store):
        # UNKNOWN, never WARNING or CRITICAL, so the monitoring system says so.
        error(str(exc))
        output(args, {"ok": False, "worst": "unknown", "alerts": [], "error": str(exc)},
               f"UNKNOWN: {exc}")  # fmt: skip
        return NAGIOS_UNKNOWN
    lines = [
        f"{a['severity'].upper():<9} {a['code']}: {printable(a['message'])}" for a in obj["alerts"]
    ]
    output(args, obj, "\n".join(lines) or "no alerts")
    if not args.exit_code or obj["ok"]:
        return EXIT_OK
    return NAGIOS_CRITICAL if obj["worst"] == "critical" else NAGIOS_WARNING


def _doctor(args: argparse.Namespace) -> int:
    from volact import doctor
    from volact.host.doctor import steps

    outcomes = doctor.walk(steps(args.home))
    obj = doctor.report(outcomes)
    output(args, obj, doctor.text(outcomes))
    return EXIT_OK if obj["ok"] else EXIT_ERROR
