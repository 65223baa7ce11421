"""The host's read-only web console and its JSON API (``host serve --console``).

Every object the API returns is the one the CLI's ``--json`` prints: the routes
call :mod:`volact.host.admin` and add nothing. Pages are rendered here as plain
HTML with inline SVG charts (no CDN, no framework); every string that came from
the network (workstation names, addresses, DNS errors) is escaped.

Access needs a token from ``volact host token create``: scripts send
``Authorization: Bearer TOKEN``; a browser posts it once to ``/login`` and gets a
session cookie (HttpOnly, SameSite=Strict) that ends when its token is revoked.
Anything else gets 401 and learns nothing.

The console runs in its own thread with its own event loop (uvicorn), reading the
store through its own SQLite connections: a page view never runs on the
activation loop, and an idle console costs the activation path nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import html
import json
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from volact.addresses import format_hostport
from volact.errors import ConfigurationError, UsageError, VolactError
from volact.host import admin, tokens
from volact.host.config import parse_listen

DEFAULT_PORT = 8688
COOKIE = "volact_session"
#: A browser session lasts this long (seconds) unless its token is revoked first.
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 1000
MAX_LOGIN_BODY = 4096
MAX_LIMIT = 1000

Clock = Callable[[], int]


class _Sessions:
    """Browser sessions: random ids kept in memory (a restart logs everyone out)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, tuple[str, float]] = {}

    def open(self, token_id: str) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._by_id = {k: v for k, v in self._by_id.items() if v[1] > now}
            if len(self._by_id) >= MAX_SESSIONS:
                oldest = min(self._by_id, key=lambda k: self._by_id[k][1])
                del self._by_id[oldest]
            self._by_id[sid] = (token_id, now + SESSION_SECONDS)
        return sid

    def token_id(self, sid: str) -> str | None:
        with self._lock:
            entry = self._by_id.get(sid)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def close(self, sid: str) -> None:
        with self._lock:
            self._by_id.pop(sid, None)


def create_app(home: Path, clock: Clock) -> FastAPI:
    """The console's ASGI application for the host home ``home``."""
    app = FastAPI(
        title="volact host console",
        version="1",
        description="Read-only API of a volact key management host; objects are the "
        "CLI's --json. Send `Authorization: Bearer TOKEN` (volact host token create).",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    sessions = _Sessions()

    def authorized(request: Request) -> bool:
        records = tokens.load(home)
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and tokens.check(records, auth[7:].strip()):
            return True
        sid = request.cookies.get(COOKIE)
        if sid:
            tid = sessions.token_id(sid)
            if tid is not None and any(r.id == tid for r in records):
                return True
        return False

    def unauthorized(request: Request) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"error": "a valid token is needed (Authorization: Bearer TOKEN)"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="volact"'},
            )
        return _login_page(401, "Log in with a console token.")

    @app.exception_handler(RequestValidationError)
    async def _bad_params(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
            for e in exc.errors()
        ]
        return JSONResponse({"error": "; ".join(problems)}, status_code=400)

    @app.exception_handler(UsageError)
    async def _usage(request: Request, exc: UsageError) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(VolactError)
    async def _volact(request: Request, exc: VolactError) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=503)

    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Response:
        # Checked before anything else (parameters included): without a token, every
        # path but the login form answers 401 and says nothing about the host.
        if request.url.path in ("/login", "/logout") or authorized(request):
            response: Response = await call_next(request)
        else:
            response = unauthorized(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
            "form-action 'self'; frame-ancestors 'none'"
        )
        return response

    # --- API ---------------------------------------------------------------

    @app.get("/api/v1/status")
    def api_status() -> dict[str, Any]:
        return admin.status(home, now=clock())

    @app.get("/api/v1/events")
    def api_events(
        limit: int = Query(50, ge=1, le=MAX_LIMIT),
        before: int | None = Query(None, ge=1, le=2**62),
        since: int | None = Query(None, ge=0, le=2**62, description="Unix seconds"),
        cmid: str | None = Query(None, max_length=64),
        workstation: str | None = Query(None, max_length=256),
        result: str | None = Query(None, max_length=64),
    ) -> dict[str, Any]:
        return _events(home, limit, before, since, cmid, workstation, result)

    @app.get("/api/v1/reports/activity")
    def api_activity(days: int = Query(30, ge=1, le=3660)) -> dict[str, Any]:
        return admin.activity(home, days=days, now=clock())

    @app.get("/api/v1/reports/licensing")
    def api_licensing(
        limit: int = Query(100, ge=1, le=MAX_LIMIT)
    ) -> dict[str, Any]:
        return admin.licensing(home, now=clock(), limit=limit)

    @app.get("/api/v1/alerts")
    def api_alerts(
        expiry_days: int = Query(admin.EXPIRY_WARNING_DAYS, ge=1, le=3660),
        idle_hours: int = Query(admin.IDLE_HOURS, ge=1, le=87600),
    ) -> dict[str, Any]:
        return admin.alerts(home, now=clock(), expiry_days=expiry_days, idle_hours=idle_hours)

    # --- pages -------------------------------------------------------------

    @app.get("/login", include_in_schema=False)
    def login_form() -> Response:
        return _login_page(200, "Log in with a console token.")

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_LOGIN_BODY:
                return _login_page(400, "That request is too large.")
        fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        token = (fields.get("token") or [""])[0].strip()
        record = tokens.check(tokens.load(home), token) if token else None
        if record is None:
            return _login_page(401, "That token is not valid.")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE, sessions.open(record.id), max_age=SESSION_SECONDS,
            httponly=True, samesite="strict", path="/",
        )  # fmt: skip
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        sessions.close(request.cookies.get(COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/", include_in_schema=False)
    def overview() -> Response:
        return _page("Overview", "/", _overview_html(admin.status(home, now=clock())))

    @app.get("/activity", include_in_schema=False)
    def activity(days: int = Query(30, ge=1, le=3660)) -> Response:
        return _page("Activity", "/activity", _activity_html(admin.activity(
            home, days=days, now=clock())))  # fmt: skip

    @app.get("/licensing", include_in_schema=False)
    def licensing(limit: int = Query(20, ge=1, le=MAX_LIMIT)) -> Response:
        return _page("Licensing", "/licensing", _licensing_html(admin.licensing(
            home, now=clock(), limit=limit)))  # fmt: skip

    @app.get("/alerts", include_in_schema=False)
    def alerts() -> Response:
        return _page("Alerts", "/alerts", _alerts_html(admin.alerts(home, now=clock())))

    @app.get("/api/v1/fleet")
    def api_fleet() -> dict[str, Any]:
        return fleet(home, clock())

    @app.get("/fleet", include_in_schema=False)
    def fleet_page() -> Response:
        return _page("Fleet", "/fleet", _fleet_html(fleet(home, clock())))

    @app.get("/events", include_in_schema=False)
    def events(
        limit: int = Query(50, ge=1, le=MAX_LIMIT),
        before: int | None = Query(None, ge=1, le=2**62),
        cmid: str | None = Query(None, max_length=64),
        workstation: str | None = Query(None, max_length=256),
        result: str | None = Query(None, max_length=64),
    ) -> Response:
        filters = {"cmid": cmid or "", "workstation": workstation or "", "result": result or ""}
        try:
            obj = _events(home, limit, before, None, cmid, workstation, result)
        except UsageError as exc:
            return _page("Events", "/events", _events_html(None, filters, str(exc)), 400)
        return _page("Events", "/events", _events_html(obj, filters, None))

    return app


def _events(
    home: Path,
    limit: int,
    before: int | None,
    since: int | None,
    cmid: str | None,
    workstation: str | None,
    result: str | None,
) -> dict[str, Any]:
    return admin.events(
        home, limit=limit, before=before, since=since,
        cmid=admin.parse_cmid(cmid) if cmid else None,
        workstation=workstation or None,
        result=admin.parse_result(result) if result else None,
    )  # fmt: skip


# --- fleet -----------------------------------------------------------------

FLEET_FILE = "console-fleet.json"
FLEET_FORMAT = "volact-console-fleet"
MAX_PEERS = 64
#: Most publish domains whose SRV records the fleet view reads.
MAX_DNS_DOMAINS = 16
#: A peer console must answer within this many seconds, else it is shown as silent.
PEER_TIMEOUT = 3.0


def load_fleet(home: Path) -> list[dict[str, str]]:
    """The other hosts' consoles: ``[{"name", "url", "token"}]`` from ``console-fleet.json``.

    The file holds tokens, so it must be readable by its owner only (mode 0600).
    """
    path = home / FLEET_FILE
    try:
        mode = path.stat().st_mode & 0o077
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path} is not a volact fleet file: {exc}") from exc
    if mode:
        raise ConfigurationError(f"{path} holds tokens: make it owner-only (chmod 600)")
    try:
        if obj["format"] != FLEET_FORMAT or len(obj["hosts"]) > MAX_PEERS:
            raise ValueError("format")
        peers = [{"name": str(h["name"]), "url": str(h["url"]).rstrip("/"),
                  "token": str(h["token"])} for h in obj["hosts"]]  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"{path}: expected {{\"format\": \"{FLEET_FORMAT}\", \"hosts\": [{{\"name\", "
            f"\"url\", \"token\"}}]}} with at most {MAX_PEERS} hosts ({exc!r})"
        ) from None
    for p in peers:
        if not p["url"].startswith(("http://", "https://")):
            raise ConfigurationError(f"{path}: {p['name']}: the url must be http:// or https://")
    return peers


def _summary(
    status: dict[str, Any], alerts: dict[str, Any], week: dict[str, Any]
) -> dict[str, Any]:
    return {
        "answered": True,
        "host_id": status["host_id"],
        "fqdn": status.get("fqdn"),
        "activated": status["activated"],
        "count": status["count"],
        "known_clients": status["known_clients"],
        "renewals_last_7_days": sum(r["renewals"] for r in week["rows"]),
        "alerts": len(alerts["alerts"]),
        "critical": sum(a["severity"] == "critical" for a in alerts["alerts"]),
        "rebalance": status.get("rebalance"),
    }


def _peer(peer: dict[str, str]) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {peer['token']}"}
    try:
        with httpx.Client(base_url=peer["url"], headers=headers, timeout=PEER_TIMEOUT) as c:
            got = []
            for path in ("/api/v1/status", "/api/v1/alerts", "/api/v1/reports/activity?days=7"):
                r = c.get(path)
                if r.status_code != 200:
                    return {"answered": False, "error": f"{path} answered HTTP {r.status_code}"}
                got.append(r.json())
        return _summary(*got)
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return {"answered": False, "error": f"no answer: {type(exc).__name__}"}


def fleet(home: Path, now: int) -> dict[str, Any]:
    """This host and every configured peer side by side; a silent peer is marked so.

    Where this host publishes itself in DNS, the SRV records of those domains are read
    too (from the DNS servers it updates): each row says in which domains its host is
    published, and a host published there but not in ``console-fleet.json`` gets a
    row of its own (no token to ask it with, so nothing more is known of it).
    """
    from concurrent.futures import ThreadPoolExecutor

    peers = load_fleet(home)
    status = admin.status(home, now=now)
    own = _summary(status, admin.alerts(home, now=now),
                   admin.activity(home, days=7, now=now))  # fmt: skip
    with ThreadPoolExecutor(max_workers=8) as pool:
        in_dns = pool.submit(_published, home, status["dns"])
        answers = list(pool.map(_peer, peers))
        dns_view = in_dns.result()
    hosts = [{"name": "this host", "url": None, **own}]
    hosts += [
        {"name": p["name"], "url": p["url"], **a} for p, a in zip(peers, answers, strict=True)
    ]
    total = sum(h["renewals_last_7_days"] for h in hosts if h["answered"])
    for h in hosts:
        if h["answered"]:
            h["renewal_share"] = round(h["renewals_last_7_days"] / total, 4) if total else None
    if dns_view is not None:
        _match_dns(hosts, dns_view)
    return {"hosts": hosts, "dns": dns_view}


def _published(home: Path, dns_status: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Per publish domain of this host (``dns_status``: the ``dns`` object of ``host
    status``): the SRV targets there (with the host ids that claim them) or the reason
    they could not be read; None without DNS servers to ask."""
    from volact.host.dns.files import load_settings
    from volact.host.dns.updates import read_srv

    if not dns_status.get("servers"):
        return None
    try:
        settings = load_settings(home)  # the servers and the TSIG key file to ask with
    except ConfigurationError:
        return None
    label = dns_status["label"]
    out: list[dict[str, Any]] = []
    for domain in [d["domain"] for d in dns_status["domains"]][:MAX_DNS_DOMAINS]:
        records, error = read_srv(domain, settings, label=label, timeout=PEER_TIMEOUT)
        entry: dict[str, Any] = {"domain": domain, "owner": f"{label}.{domain}"}
        if error is not None:
            entry["error"] = error
        else:
            entry["targets"] = [
                {"target": v.target, "priority": v.priority, "weight": v.weight,
                 "port": v.port, "host_ids": list(ids)}
                for v, ids in records[:MAX_PEERS]
            ]  # fmt: skip
        out.append(entry)
    return out


def _match_dns(hosts: list[dict[str, Any]], dns_view: list[dict[str, Any]]) -> None:
    """Mark each row with the domains its host is published in (by the host id in the
    record's marker, else by name), and add a row per published host no row stands for."""
    for h in hosts:
        h["in_dns"] = []
    found: dict[str, dict[str, Any]] = {}
    for entry in dns_view:
        for t in entry.get("targets", []):
            row = next((h for h in hosts if _is(h, t)), None)
            if row is None:
                row = found.setdefault(t["target"], {
                    "name": t["target"], "url": None, "answered": False, "discovered": True,
                    "host_id": t["host_ids"][0] if len(t["host_ids"]) == 1 else None,
                    "error": "published in DNS, not in console-fleet.json (add its console "
                             "URL and a token to see it)",
                    "in_dns": [],
                })  # fmt: skip
            if entry["domain"] not in row["in_dns"]:
                row["in_dns"].append(entry["domain"])
    hosts += found.values()


def _is(row: dict[str, Any], target: dict[str, Any]) -> bool:
    if row.get("host_id") and row["host_id"] in target["host_ids"]:
        return True
    name = target["target"]
    url_host = urllib.parse.urlsplit(row["url"]).hostname if row.get("url") else None
    return name in (row.get("fqdn"), url_host)


# --- HTML ------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:.6em 1.5em;display:flex;gap:1.5em;align-items:center}
header a{color:#cfd6e4;text-decoration:none}header a.on{color:#fff;font-weight:600}
header form{margin-left:auto}main{padding:1em 1.5em;max-width:72em}
.cards{display:flex;flex-wrap:wrap;gap:1em}.card{background:#fff;border-radius:6px;
padding:.8em 1.2em;box-shadow:0 1px 2px #0002;min-width:12em}
.card b{display:block;font-size:1.7em}table{border-collapse:collapse;background:#fff;margin:.5em 0}
td,th{padding:.3em .7em;border-bottom:1px solid #e3e6eb;text-align:left}
.ok{color:#17803d}.bad{color:#b42318}.warn{color:#b54708}code{font-size:.9em}
.login{max-width:26em;margin:5em auto;background:#fff;padding:1.5em;border-radius:6px}
.login input{width:100%;box-sizing:border-box;padding:.4em}#filters input{width:14em;padding:.25em}
#filters label{margin-right:.8em}#events td,#soonest td{white-space:nowrap}
svg text{font:11px system-ui,sans-serif;fill:#444}
"""

_PAGES = (("/", "Overview"), ("/activity", "Activity"), ("/licensing", "Licensing"),
          ("/alerts", "Alerts"), ("/events", "Events"), ("/fleet", "Fleet"))  # fmt: skip


def _e(value: Any) -> str:
    """Any value as HTML text: everything escaped, quotes included."""
    return html.escape("" if value is None else str(value), quote=True)


def _time(t: int | None) -> str:
    if t is None:
        return "never"
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _doc(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'><link rel=icon href='data:,'>"
        f"<title>{_e(title)} · volact</title>"
        f"<style>{_CSS}</style></head><body>{body}</body></html>"
    )


def _login_page(status: int, message: str) -> HTMLResponse:
    body = (
        "<div class=login><h1>volact host console</h1>"
        f"<p id=message>{_e(message)}</p>"
        "<form method=post action=/login><p><input type=password name=token id=token "
        "autocomplete=off placeholder='vat_…' aria-label=token></p>"
        "<p><button type=submit id=login>Log in</button></p></form>"
        "<p><small>Create one with <code>volact host token create --home DIR</code>.</small></p>"
        "</div>"
    )
    return HTMLResponse(_doc("Log in", body), status_code=status)


def _page(title: str, path: str, content: str, status: int = 200) -> HTMLResponse:
    nav = "".join(
        f"<a href='{href}'{' class=on' if href == path else ''}>{name}</a>"
        for href, name in _PAGES
    )
    body = (
        f"<header><strong>volact</strong>{nav}<form method=post action=/logout>"
        "<button type=submit>Log out</button></form></header>"
        f"<main><h1>{_e(title)}</h1>{content}</main>"
    )
    return HTMLResponse(_doc(title, body), status_code=status)


def _card(label: str, value: Any, cls: str = "", ident: str = "") -> str:
    id_attr = f" id={ident}" if ident else ""
    return f"<div class=card>{_e(label)}<b class='{cls}'{id_attr}>{_e(value)}</b></div>"


def _overview_html(st: dict[str, Any]) -> str:
    parts = ["<div class=cards>"]
    parts.append(_card("Activated", "yes" if st["activated"] else f"no ({st['license_state']})",
                       "ok" if st["activated"] else "bad", "activated"))  # fmt: skip
    parts.append(_card("Count (30 days)", st["count"], "", "count"))
    parts.append(_card("Known clients", st["known_clients"], "", "known"))
    parts.append(_card("License expires", _time(st["license_expires_at"])
                       if st["license_expires_at"] else "never", "", "expiry"))  # fmt: skip
    parts.append(_card("Serving", "yes" if st["serving"] else "no",
                       "ok" if st["serving"] else "bad"))  # fmt: skip
    parts.append("</div><h2>Product groups</h2><table id=groups><tr><th>group<th>licensed"
                 "<th>count<th>threshold<th>ready</tr>")  # fmt: skip
    for group, need in st["thresholds"].items():
        licensed = group in st["licensed_groups"]
        ready = st["groups_ready"].get(group, False)
        parts.append(
            f"<tr><td>{_e(group)}<td>{'yes' if licensed else 'no'}<td>{_e(st['count'])}"
            f"<td>{_e(need)}<td class={'ok' if ready else 'warn'}>"
            f"{'met' if ready else 'not yet' if licensed else '—'}</tr>"
        )
    parts.append("</table><h2>Serving</h2><p>")
    parts.append(", ".join(f"<code>{_e(a)}</code>" for a in st["listening"]) or "not serving")
    parts.append(f" (host {_e(st['host_id'])}, {_e(st['fqdn'])})</p><h2>DNS publishing</h2>")
    dns_state = st.get("dns") or {}
    if not dns_state.get("enabled"):
        parts.append(f"<p>off {_e(dns_state.get('error') or '')}</p>")
    else:
        parts.append("<table id=dns><tr><th>domain<th>state<th>last error</tr>")
        for d in dns_state.get("domains", []):
            state = "failing" if d.get("last_error") else (
                "published" if d.get("published") else "pending")
            parts.append(f"<tr><td>{_e(d.get('domain'))}<td>{_e(state)}"
                         f"<td>{_e(d.get('last_error') or '')}</tr>")  # fmt: skip
        parts.append("</table>")
    rebalance = st.get("rebalance")
    if rebalance:
        parts.append("<h2>Rebalance</h2><table id=rebalance>")
        for k, v in sorted(rebalance.items()):
            shown = json.dumps(v) if isinstance(v, dict | list) else v
            parts.append(f"<tr><th>{_e(k)}<td>{_e(shown)}</tr>")
        parts.append("</table>")
    return "".join(parts)


def _bars(
    series: list[tuple[str, dict[str, int]]], keys: tuple[str, ...], ident: str, slot: int = 56
) -> str:
    """A stacked bar chart as inline SVG: one bar per label, ``slot`` pixels apart."""
    colors = ("#3b6fd8", "#17a673", "#d9822b", "#b42318")
    height, pad = 200, 44
    width = max(360, pad + slot * len(series) + 10)
    top = max((sum(v.get(k, 0) for k in keys) for _, v in series), default=0) or 1
    every = max(1, len(series) // 16)  # at most 16 labels under the bars
    out = [f"<svg id={ident} role=img width={width} height={height + 44} "
           f"viewBox='0 0 {width} {height + 44}'>"]  # fmt: skip
    out.append(f"<line x1={pad - 4} y1=10 x2={pad - 4} y2={height} stroke='#999'/>")
    out.append(f"<text x=4 y=16>{_e(top)}</text><text x=4 y={height}>0</text>")
    for i, (label, values) in enumerate(series):
        y = float(height)
        x = pad + i * slot
        for k, color in zip(keys, colors, strict=False):
            h = values.get(k, 0) / top * (height - 10)
            if h:
                y -= h
                out.append(f"<rect x={x + 4} y={y:.1f} width={slot - 8} height={h:.1f} "
                           f"fill='{color}'><title>{_e(label)} {_e(k)}: "
                           f"{_e(values.get(k, 0))}</title></rect>")  # fmt: skip
        total = sum(values.get(k, 0) for k in keys)
        if total:
            out.append(f"<text x={x + slot / 2:.1f} y={y - 3:.1f} "
                       f"text-anchor=middle>{_e(total)}</text>")  # fmt: skip
        if i % every == 0:
            out.append(f"<text x={x + slot / 2:.1f} y={height + 14} "
                       f"text-anchor=middle>{_e(label)}</text>")  # fmt: skip
    for j, (k, color) in enumerate(zip(keys, colors, strict=False)):
        out.append(f"<rect x={pad + j * 110} y={height + 28} width=10 height=10 fill='{color}'/>"
                   f"<text x={pad + j * 110 + 14} y={height + 37}>{_e(k)}</text>")  # fmt: skip
    out.append("</svg>")
    return "".join(out)


_ACTIVITY_KEYS = ("activations", "renewals", "refusals")


def _activity_html(obj: dict[str, Any]) -> str:
    per_day: dict[str, dict[str, int]] = {}
    per_sku: dict[str, dict[str, int]] = {}
    by_result: dict[str, int] = {}
    for r in obj["rows"]:
        for table, key in ((per_day, r["day"]), (per_sku, r["product"])):
            entry = table.setdefault(key, dict.fromkeys(_ACTIVITY_KEYS, 0))
            for k in _ACTIVITY_KEYS:
                entry[k] += r[k]
        for label, n in r["refused"].items():
            by_result[label] = by_result.get(label, 0) + n
    parts = [f"<p>Last {_e(obj['days'])} days.</p><h2>Per day</h2>"]
    days = sorted(per_day.items())
    parts.append(_bars([(d[5:], v) for d, v in days], _ACTIVITY_KEYS, "chart-day",
                       slot=44 if len(days) <= 31 else 24))  # fmt: skip
    parts.append("<h2>Per product</h2><table id=per-sku><tr><th>product<th>activations"
                 "<th>renewals<th>refusals</tr>")  # fmt: skip
    for product, counts in sorted(per_sku.items()):
        parts.append(f"<tr><td>{_e(product)}<td>{counts['activations']}"
                     f"<td>{counts['renewals']}<td>{counts['refusals']}</tr>")  # fmt: skip
    parts.append("</table><h2>Refusals by result</h2>")
    if by_result:
        parts.append("<table id=refused><tr><th>result<th>replies</tr>")
        parts += [f"<tr><td><code>{_e(k)}</code><td>{n}</tr>" for k, n in sorted(by_result.items())]
        parts.append("</table><p><small><code>count_too_low</code>: the machine asked before "
                     "the host had counted enough machines; it stays in grace and retries."
                     "</small></p>")  # fmt: skip
    else:
        parts.append("<p id=refused>None.</p>")
    return "".join(parts)


def _licensing_html(obj: dict[str, Any]) -> str:
    s = obj["summary"]
    parts = ["<div class=cards>"]
    parts.append(_card("Known clients", s["known_clients"], "", "lic-known"))
    parts.append(_card("Licensed", s["licensed"], "ok", "lic-licensed"))
    parts.append(_card(f"Expiring within {s['expiring_within_days']} days", s["expiring"],
                       "warn", "lic-expiring"))  # fmt: skip
    parts.append(_card("Expired", s["expired"], "bad", "lic-expired"))
    parts.append(_card("Never activated", s["never_activated"], "", "lic-never"))
    parts.append("</div><h2>Days left (licensed clients)</h2>")
    buckets: dict[str, dict[str, int]] = {}
    width = 15 if obj["validity_days"] > 60 else 5
    for b in range(0, obj["validity_days"] + 1, width):
        buckets[f"{b}-{b + width - 1}"] = {"clients": 0}
    for row in obj["days_left"]:
        b = row["days"] // width * width
        buckets.setdefault(f"{b}-{b + width - 1}", {"clients": 0})["clients"] += row["clients"]
    parts.append(_bars(list(buckets.items()), ("clients",), "chart-days-left"))
    parts.append("<p><small>Days left until each licensed client's activation expires "
                 "(clients renew every 7 days, so most sit near the top).</small></p>")
    parts.append("<h2>Expiring soonest</h2><table id=soonest><tr><th>workstation<th>CMID"
                 "<th>product<th>state<th>days left<th>last contact</tr>")  # fmt: skip
    for c in obj["clients"]:
        parts.append(
            f"<tr><td>{_e(c['workstation'])}<td><code>{_e(c['cmid'])}</code><td>{_e(c['product'])}"
            f"<td>{_e(c['state'])}<td>{_e(c['days_left'])}<td>{_e(_time(c['last_contact']))}</tr>"
        )
    parts.append("</table>")
    return "".join(parts)


def _alerts_html(obj: dict[str, Any]) -> str:
    if obj["ok"]:
        return "<p class=ok id=no-alerts>No alerts.</p>"
    rows = "".join(
        f"<tr><td class={'bad' if a['severity'] == 'critical' else 'warn'}>{_e(a['severity'])}"
        f"<td><code>{_e(a['code'])}</code><td>{_e(a['message'])}</tr>"
        for a in obj["alerts"]
    )
    return f"<table id=alerts><tr><th>severity<th>code<th>message</tr>{rows}</table>"


def _fleet_html(obj: dict[str, Any]) -> str:
    parts = ["<table id=fleet><tr><th>host<th>state<th>activated<th>count<th>known clients"
             "<th>renewals (7 days)<th>share<th>alerts<th>rebalance<th>in DNS</tr>"]  # fmt: skip
    for h in obj["hosts"]:
        name = _e(h["name"]) + (f"<br><small>{_e(h['url'])}</small>" if h["url"] else "")
        in_dns = "—" if obj.get("dns") is None else (_e(", ".join(h["in_dns"])) or "no")
        if not h["answered"]:
            css = "warn" if h.get("discovered") else "bad"
            parts.append(f"<tr class=silent><td>{name}<td class={css}>{_e(h['error'])}"
                         f"<td>—<td>—<td>—<td>—<td>—<td>—<td>—<td>{in_dns}</tr>")  # fmt: skip
            continue
        share = "—" if h["renewal_share"] is None else f"{h['renewal_share']:.0%}"
        rebalance = h.get("rebalance")
        shown = "—" if not rebalance else json.dumps(rebalance)[:120]
        parts.append(
            f"<tr><td>{name}<td class=ok>answering<td>{'yes' if h['activated'] else 'no'}"
            f"<td>{_e(h['count'])}<td>{_e(h['known_clients'])}<td>{_e(h['renewals_last_7_days'])}"
            f"<td>{_e(share)}<td class={'bad' if h['critical'] else ''}>{_e(h['alerts'])}"
            f"<td><small>{_e(shown)}</small><td>{in_dns}</tr>"
        )
    parts.append("</table>")
    for entry in obj.get("dns") or []:
        if "error" in entry:
            parts.append(f"<p class=bad>DNS: cannot read {_e(entry['owner'])}: "
                         f"{_e(entry['error'])}</p>")  # fmt: skip
    parts.append("<p><small>Other hosts come from <code>console-fleet.json</code> in this "
                 "host's home; one that does not answer is shown as such. Hosts published "
                 "in the DNS domains this host publishes into are listed too.</small></p>")
    return "".join(parts)


def _events_html(obj: dict[str, Any] | None, filters: dict[str, str], error: str | None) -> str:
    parts = ["<form method=get action=/events id=filters>"]
    for name, label in (("cmid", "CMID"), ("workstation", "workstation"), ("result", "result")):
        parts.append(f"<label>{label} <input type=text name={name} id=f-{name} "
                     f"value='{_e(filters[name])}'></label> ")  # fmt: skip
    parts.append("<button type=submit id=search>Search</button></form>")
    if error is not None:
        parts.append(f"<p class=bad id=error>{_e(error)}</p>")
        return "".join(parts)
    assert obj is not None
    parts.append("<table id=events><tr><th>time<th>kind<th>address<th>workstation<th>CMID"
                 "<th>result<th>count / message</tr>")  # fmt: skip
    for e in reversed(obj["events"]):
        detail = e.get("count") if e["kind"] == "request" else e.get("message")
        parts.append(
            f"<tr><td>{_e(_time(e['time']))}<td>{_e(e['kind'])}<td>{_e(e.get('address'))}"
            f"<td>{_e(e.get('workstation'))}<td><code>{_e(e.get('cmid'))}</code>"
            f"<td>{_e(e.get('result'))}<td>{_e(detail)}</tr>"
        )
    parts.append("</table>")
    if obj["next_before"] is not None:
        query = urllib.parse.urlencode(
            {k: v for k, v in filters.items() if v}
            | {"limit": len(obj["events"]), "before": obj["next_before"]}
        )
        parts.append(f"<p><a id=older href='/events?{_e(query)}'>older events →</a></p>")
    return "".join(parts)


# --- serving ---------------------------------------------------------------


class Console:
    """The console's uvicorn server, running in its own thread."""

    def __init__(self, home: Path, address: str, clock: Clock) -> None:
        import uvicorn

        host, port = parse_listen(address, DEFAULT_PORT)
        host = host or "127.0.0.1"  # loopback unless an address is given
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            self._sock = socket.socket(info[0], socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind(info[4])
            self._sock.listen(64)
        except OSError as exc:
            with contextlib.suppress(AttributeError, OSError):
                self._sock.close()
            raise ConfigurationError(f"cannot serve the console on {address}: {exc}") from exc
        name = self._sock.getsockname()
        self.address = format_hostport(name[0], name[1])
        config = uvicorn.Config(
            create_app(home, clock), log_level="warning", access_log=False,
            lifespan="off", loop="asyncio", http="h11", timeout_keep_alive=5,
            limit_concurrency=32, server_header=False,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]},
            name="volact-console", daemon=True,
        )  # fmt: skip
        self._thread.start()

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        with contextlib.suppress(OSError):
            self._sock.close()


__all__ = ["DEFAULT_PORT", "FLEET_FILE", "Console", "create_app", "fleet", "load_fleet"]
