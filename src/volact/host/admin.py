"""What an administrator reads about a host: status, events and reports.

Each function reads the home (settings, license) and the store and returns a
plain dict, the exact object ``--json`` prints (documented in
``docs/cli.md``); the CLI renders the same dict for people. Queries use the
store's indexes and running totals so that they answer in well under a second
with a million known clients. Nothing here changes state.
"""

from __future__ import annotations

import datetime
import json
import os
import uuid
from dataclasses import astuple
from pathlib import Path
from typing import Any

from volact.documents import HostLicense
from volact.errors import UsageError, VolactError
from volact.host.activation import installed_key, load_license, load_profile
from volact.host.config import PRODUCT_KEY_FILE, SERVE_FILE
from volact.host.dns.status import status as dns_status
from volact.host.home import load_config, monitor_group
from volact.host.policy import COUNT_WINDOW, VALIDITY
from volact.host.rebalance import progress, status_json, windows
from volact.host.rebalance_file import load_rebalance
from volact.host.store import DAY, REFUSED, HostStore, ValiditySummary
from volact.keys import ProductKey
from volact.wire import Result

#: Clients whose activation expires within this many days are flagged in reports.
EXPIRY_WARNING_DAYS = 15
#: A host that no client has contacted for this long raises the ``idle`` alert.
IDLE_HOURS = 24


def serving(home: Path) -> dict[str, Any] | None:
    """``serve.json`` of a running host (None when no host process is alive)."""
    try:
        info = json.loads((home / SERVE_FILE).read_text())
        os.kill(int(info["pid"]), 0)
    except PermissionError:
        pass  # alive, but run by another user (a monitoring group member asks)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if isinstance(info, dict) else None


def status(home: Path, *, now: int) -> dict[str, Any]:
    cfg = load_config(home)
    profile = load_profile(home)
    lic_bytes = load_license(home)
    lic: HostLicense | None = None
    license_state = "none"
    if lic_bytes is not None:
        lic = HostLicense.decode(lic_bytes)[0]
        license_state = "valid"
        if lic.expires_at is not None and now >= lic.expires_at:
            license_state = "expired"
        revs = profile.revocation_list()
        if revs is not None:
            try:
                revs.check(lic)
            except VolactError:
                license_state = "revoked"
    key = _readable_installed_key(home)
    run = serving(home)
    rb = load_rebalance(home)
    with HostStore.open(home, create=False) as store:
        count, known = store.count_since(now - COUNT_WINDOW, count_vms=cfg.count_vms)
        totals = store.result_totals()
        installed_at = store.installed_at()
        prog = None
        if rb is not None:
            active_since, left_before = windows(
                now,
                activation_interval=cfg.activation_interval,
                renewal_interval=cfg.renewal_interval,
            )
            told, active, left = store.rebalance_figures(
                since=rb.since, active_since=active_since, left_before=left_before
            )
            prog = progress(told=told, active=active, left=left)
    thresholds = {g.name: g.threshold for g in profile.catalog.groups}
    groups = list(lic.groups) if lic else []
    return {
        "activated": lic is not None and license_state == "valid",
        "license_state": license_state,
        "host_id": cfg.host_id.hex(),
        "fqdn": cfg.fqdn,
        "host_key": key.masked if key else None,
        "licensed_groups": groups,
        "license_expires_at": lic.expires_at if lic else None,
        "count": count,
        "known_clients": known,
        "thresholds": thresholds,
        "groups_ready": {g: count >= t for g, t in thresholds.items() if g in groups},
        "port": cfg.port,
        "listen": list(cfg.listen),
        "serving": run is not None,
        "listening": run.get("addresses", []) if run else [],
        "pid": run.get("pid") if run else None,
        "activation_interval_minutes": cfg.activation_interval,
        "renewal_interval_minutes": cfg.renewal_interval,
        "count_vms": cfg.count_vms,
        "vm_policy": "count virtual machines" if cfg.count_vms else "physical machines only",
        "requests_by_result": totals,
        "requests_total": sum(totals.values()),
        "installed_at": installed_at,
        "dns": dns_status(home),
        "rebalance": status_json(rb, prog, now=now, in_count=count),
        "monitor_group": monitor_group(home),
    }


def _readable_installed_key(home: Path) -> ProductKey | None:
    """The installed host key, or None for a reader who may not read the secret."""
    path = home / PRODUCT_KEY_FILE
    if path.exists() and not os.access(path, os.R_OK):
        return None  # a monitoring group member: the key stays owner-only (0600)
    return installed_key(home)


def events(
    home: Path,
    *,
    since: int | None = None,
    limit: int = 100,
    before: int | None = None,
    cmid: uuid.UUID | None = None,
    workstation: str | None = None,
    result: Result | None = None,
) -> dict[str, Any]:
    """The newest ``limit`` events, oldest first, with the filters of ``host events``.

    ``next_before`` pages back: pass it as ``before`` for the older page (None when
    this page is the oldest).
    """
    with HostStore.open(home, create=False) as store:
        rows = store.events(
            since=since,
            limit=limit,
            before=before,
            cmid=cmid.bytes if cmid is not None else None,
            workstation=workstation,
            result=int(result) if result is not None else None,
        )
    out = []
    for e in rows:
        item: dict[str, Any] = {"id": e.id, "time": e.time, "kind": e.kind}
        if e.kind == "request":
            item.update(
                address=e.address,
                workstation=e.workstation,
                cmid=_uuid(e.cmid),
                sku=_uuid(e.sku),
                vm=e.vm,
                state=e.state,
                result=Result(e.result).label if e.result is not None else None,
                count=e.count,
            )
        else:
            if e.address:
                item["address"] = e.address
            item["message"] = e.message
        out.append(item)
    more = len(rows) == limit and rows[0].id > 1
    return {"events": out, "next_before": rows[0].id if rows and more else None}


def activity(home: Path, *, days: int = 30, now: int) -> dict[str, Any]:
    """Activations, renewals and refusals per day and product.

    ``refusals`` counts every reply but OK (count too low included: the machine is not
    activated yet); ``refused`` splits them by result label. Hosts only began keeping
    refusals in their daily totals with the console: older days show none.
    """
    profile = load_profile(home)
    names = {s.id.bytes: s for s in profile.catalog.skus}
    with HostStore.open(home, create=False) as store:
        rows = store.daily_activity(now // DAY - days + 1)
    table: dict[tuple[int, str], dict[str, Any]] = {}
    for day, sku, kind, n in rows:
        s = names.get(sku)
        product = s.name if s else _uuid(sku) or "?"
        entry = table.setdefault(
            (day, product), {"activations": 0, "renewals": 0, "refusals": 0, "refused": {}}
        )
        if kind.startswith(REFUSED):
            entry["refusals"] += int(n)
            label = kind[len(REFUSED) :]
            entry["refused"][label] = entry["refused"].get(label, 0) + int(n)
        else:
            entry["activations" if kind == "activation" else "renewals"] += int(n)
    return {
        "days": days,
        "rows": [
            {"day": _day(day), "product": product, **counts,
             "refused": dict(sorted(counts["refused"].items()))}
            for (day, product), counts in sorted(table.items())
        ],
    }  # fmt: skip


def licensing(home: Path, *, now: int, limit: int = 100) -> dict[str, Any]:
    """Each known client with last contact and days until its activation expires.

    With many clients the list is the ``limit`` that expire soonest (still valid
    first, then expired); the summary counts all of them.
    """
    warn = now + EXPIRY_WARNING_DAYS * DAY
    with HostStore.open(home, create=False) as store:
        summary, histogram = store.validity_and_days_left(
            now=now, warn=warn, counted_since=now - COUNT_WINDOW
        )
        rows = [astuple(r) for r in store.clients_by_expiry(now, limit)]
    total, valid, expiring, expired, never, active = astuple(summary)
    profile = load_profile(home)
    names = {s.id.bytes: s.name for s in profile.catalog.skus}
    clients = [
        {
            "cmid": _uuid(cmid),
            "product": names.get(sku, _uuid(sku)),
            "workstation": ws,
            "address": addr,
            "vm": bool(vm),
            "last_contact": last,
            "days_since_contact": (now - last) // DAY,
            "valid_until": valid_until or None,
            "days_left": (valid_until - now) // DAY if valid_until > now else 0,
            "state": (
                "never_activated" if not valid_until
                else "expired" if valid_until <= now
                else "expiring" if valid_until <= warn
                else "licensed"
            ),
            "last_result": Result(res).label,
        }
        for cmid, sku, ws, addr, vm, last, valid_until, res in rows
    ]  # fmt: skip
    return {
        "summary": {
            "known_clients": total,
            "licensed": valid,
            "expiring_within_days": EXPIRY_WARNING_DAYS,
            "expiring": expiring,
            "expired": expired,
            "never_activated": never,
            "counted_last_30_days": active,
        },
        "validity_days": VALIDITY // DAY,
        "days_left": [{"days": int(d), "clients": int(n)} for d, n in histogram],
        "clients": clients,
        "limit": limit,
    }


def _validity_summary(store: HostStore, *, now: int, warn: int) -> ValiditySummary:
    return store.validity_summary(now=now, warn=warn, counted_since=now - COUNT_WINDOW)


def alerts(
    home: Path,
    *,
    now: int,
    expiry_days: int = EXPIRY_WARNING_DAYS,
    idle_hours: int = IDLE_HOURS,
) -> dict[str, Any]:
    """What needs an administrator's attention (SPEC §5), most severe first.

    Each alert has a ``severity`` (``critical`` or ``warning``), a stable ``code``
    and a ``message`` saying what to do. A monitoring system reads ``ok``.
    """
    st = status(home, now=now)
    found: list[dict[str, Any]] = []

    def alert(severity: str, code: str, message: str) -> None:
        found.append({"severity": severity, "code": code, "message": message})

    if not st["activated"]:
        what = {
            "none": "has no host license",
            "expired": "has an expired host license",
            "revoked": "has been revoked by the vendor",
        }.get(st["license_state"], "")
        alert("critical", "host_not_activated",
              f"the host {what}: clients are refused; activate it "
              "(`volact host activate --authority URL` or by file)")  # fmt: skip
    if not st["serving"]:
        alert("critical", "not_serving", "no `volact host serve` process runs on this home")
    for group in st["licensed_groups"]:
        need = st["thresholds"].get(group)
        if need is not None and st["count"] < need:
            alert("warning", "count_below_threshold",
                  f"count {st['count']} is below the {group} threshold {need}: "
                  f"{group} machines stay in grace until {need} distinct machines ask")  # fmt: skip
    warn = now + expiry_days * DAY
    with HostStore.open(home, create=False) as store:
        summary = _validity_summary(store, now=now, warn=warn)
        last_request = store.last_request_time()
        # A count flood in the last day (the host writes at most one event a minute).
        flood = store.last_event_since("count_flood", now - DAY)
    expiring, expired = summary.expiring, summary.expired
    if expiring:
        alert("warning", "clients_expiring",
              f"{expiring} client(s) lose activation within {expiry_days} days unless they "
              "renew: see `volact host report licensing`")  # fmt: skip
    if expired:
        alert("warning", "clients_expired",
              f"{expired} known client(s) have an expired activation")  # fmt: skip
    if last_request is None or now - last_request > idle_hours * 3600:
        since = "ever" if last_request is None else f"for {(now - last_request) // 3600} h"
        alert("warning", "idle", f"no client has contacted the host {since} "
              "(check DNS publishing, firewalls and the clients' host settings)")  # fmt: skip
    if flood:
        alert("warning", "count_flood",
              f"machines new to the count were refused in the last 24 h (the newest: "
              f"{flood[1]}); someone may be inventing machine ids: see `volact host events` "
              "and the settings max_machines and new_machines_per_hour")  # fmt: skip
    dns_state = st["dns"]
    if dns_state.get("enabled"):
        for d in dns_state.get("domains", []):
            if d.get("failures"):
                domain, reason = d.get("domain"), d.get("last_error")
                alert("warning", "dns_publish_failing", f"publishing into {domain} fails: {reason}")
    found.sort(key=lambda a: a["severity"] != "critical")
    return {
        "ok": not found,
        "worst": found[0]["severity"] if found else "ok",
        "alerts": found,
        "count": st["count"],
        "last_request": last_request,
        "expiry_days": expiry_days,
        "idle_hours": idle_hours,
    }


def parse_result(text: str) -> Result:
    """A result label (``ok``, ``count_too_low``, ...) as given to ``--result``."""
    try:
        return Result[text.strip().upper()]
    except KeyError:
        names = ", ".join(r.label for r in Result)
        raise UsageError(f"result {text!r} is not one of: {names}") from None


def parse_cmid(text: str) -> uuid.UUID:
    """A client machine id as given to ``--cmid`` (a UUID)."""
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise UsageError(f"CMID {text!r} is not a UUID (e.g. {uuid.UUID(int=0)})") from None


def _uuid(b: bytes | None) -> str | None:
    return None if b is None else str(uuid.UUID(bytes=bytes(b)))


def _day(day: int) -> str:
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=day)).isoformat()


__all__ = [
    "activity", "alerts", "events", "licensing", "parse_cmid", "parse_result", "serving",
    "status",
]
