"""The console's JSON API (``host serve --console``): tokens, same JSON as the CLI, 400s.

A real host process serves the console on a loopback port; requests go over real
sockets with httpx. A schema-driven fuzzer (schemathesis) walks the OpenAPI schema.
"""

from __future__ import annotations

import json
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from console_support import HOSTILE, VOLACT, ConsoleHost, cmid, secrets_of, start
from test_host_server import Host
from volact.host import tokens
from volact.host.config import SERVE_FILE
from volact.host.console import FLEET_FILE
from volact.host.tokens import TOKENS_FILE
from volact.testing.hosts import make_host_home

ROUTES = ["/api/v1/status", "/api/v1/events", "/api/v1/reports/activity",
          "/api/v1/reports/licensing", "/api/v1/alerts", "/api/v1/openapi.json",
          "/", "/activity", "/licensing", "/alerts", "/events"]  # fmt: skip


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleHost]:
    c = start(tmp_path_factory.mktemp("console"))
    try:
        yield c
    finally:
        assert c.host.stop() == 0


def get(c: ConsoleHost, path: str, token: str | None = None, **params: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or c.token}"} if token != "" else {}
    return httpx.get(c.url + path, params=params, headers=headers, timeout=30)  # type: ignore[arg-type]


def test_tokens_are_stored_hashed_and_owner_only(console: ConsoleHost) -> None:
    path = console.home / TOKENS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert console.token not in text and console.token.startswith("vat_")
    listed = console.cli_json("token", "list")["tokens"]
    assert [t["name"] for t in listed] == ["tests"] and "sha256" not in listed[0]


def test_everything_answers_401_without_a_valid_token(console: ConsoleHost) -> None:
    secret_bits = secrets_of(console)
    for path in ROUTES:
        for token in ("", "vat_wrong", console.token + "x"):
            r = get(console, path, token, limit="bad")
            assert r.status_code == 401, (path, token, r.status_code)
            assert "pc-" not in r.text and "count" not in r.text.lower().replace("account", "")
            assert not any(s in r.text for s in secret_bits)
    r = httpx.get(console.url + "/api/v1/status", headers={"Cookie": "volact_session=forged"})
    assert r.status_code == 401


def test_api_objects_equal_the_cli_json(console: ConsoleHost) -> None:
    status = get(console, "/api/v1/status").json()
    cli = console.cli_json("status")
    assert status["count"] == cli["count"] == 30
    assert status == cli
    assert get(console, "/api/v1/reports/activity").json() == console.cli_json(
        "report", "activity")  # fmt: skip
    lic = get(console, "/api/v1/reports/licensing", limit=5).json()
    assert lic == console.cli_json("report", "licensing", "--limit", "5")
    assert sum(b["clients"] for b in lic["days_left"]) == lic["summary"]["licensed"]
    ev = get(console, "/api/v1/events", limit=10).json()
    assert ev == console.cli_json("events", "--limit", "10")
    al = get(console, "/api/v1/alerts").json()
    assert al == console.cli_json("alerts")
    text = json.dumps([status, lic, ev, al])
    assert not any(s in text for s in secrets_of(console))


def test_events_paging_and_filters(console: ConsoleHost) -> None:
    first = get(console, "/api/v1/events", limit=7).json()
    assert len(first["events"]) == 7 and first["next_before"] == first["events"][0]["id"]
    older = get(console, "/api/v1/events", limit=7, before=first["next_before"]).json()
    assert older["events"][-1]["id"] == first["events"][0]["id"] - 1
    seen: list[int] = []
    page: dict[str, object] = {"limit": 9}
    for _ in range(20):
        r = get(console, "/api/v1/events", **page).json()
        seen = [e["id"] for e in r["events"]] + seen
        if r["next_before"] is None:
            break
        page["before"] = r["next_before"]
    assert seen == sorted(set(seen)) and len(seen) >= 31  # serve_start and 30 requests
    one = get(console, "/api/v1/events", cmid=cmid(4)).json()["events"]
    assert [e["workstation"] for e in one] == ["pc-4"]
    hostile = get(console, "/api/v1/events", workstation="SCRIPT>").json()["events"]
    assert [e["workstation"] for e in hostile] == [HOSTILE]
    ok = get(console, "/api/v1/events", result="ok", limit=100).json()["events"]
    low = get(console, "/api/v1/events", result="count_too_low", limit=100).json()["events"]
    assert {e["result"] for e in ok} == {"ok"} and {e["result"] for e in low} == {"count_too_low"}
    assert len(ok) + len(low) == 30
    assert get(console, "/api/v1/events", result="ok", limit=100).json() == console.cli_json(
        "events", "--result", "ok", "--limit", "100")  # fmt: skip


@pytest.mark.parametrize(
    ("path", "params", "needle"),
    [
        ("/api/v1/events", {"limit": "0"}, "limit"),
        ("/api/v1/events", {"limit": "many"}, "limit"),
        ("/api/v1/events", {"cmid": "not-a-uuid"}, "UUID"),
        ("/api/v1/events", {"result": "maybe"}, "count_too_low"),
        ("/api/v1/events", {"before": "-3"}, "before"),
        ("/api/v1/reports/activity", {"days": "x"}, "days"),
        ("/api/v1/reports/licensing", {"limit": "100000"}, "limit"),
        ("/api/v1/alerts", {"expiry_days": "-1"}, "expiry_days"),
    ],
)
def test_bad_parameters_answer_400(
    console: ConsoleHost, path: str, params: dict[str, str], needle: str
) -> None:
    r = get(console, path, **params)
    assert r.status_code == 400
    assert needle in r.json()["error"]


def test_login_cookie_and_revocation(console: ConsoleHost) -> None:
    with httpx.Client(base_url=console.url, timeout=30) as browser:
        assert browser.post("/login", data={"token": "vat_nope"}).status_code == 401
        r = browser.post("/login", data={"token": console.token})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert browser.get("/api/v1/status").status_code == 200
        assert browser.get("/").status_code == 200
    # A second token, revoked: its bearer and its sessions stop working at once.
    made = console.cli_json("token", "create", "--name", "temp")
    with httpx.Client(base_url=console.url, timeout=30) as browser:
        assert browser.post("/login", data={"token": made["token"]}).status_code == 303
        assert browser.get("/alerts").status_code == 200
        console.cli_json("token", "revoke", made["id"])
        assert browser.get("/alerts").status_code == 401
    assert get(console, "/api/v1/status", made["token"]).status_code == 401


def test_pages_escape_network_text(console: ConsoleHost) -> None:
    for path in ("/events", "/licensing"):
        r = get(console, path, limit=100)
        assert r.status_code == 200
        assert HOSTILE not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    r = get(console, "/events", cmid="<b>")
    assert r.status_code == 400 and "<b>" not in r.text


def test_token_cli_errors_are_clear(tmp_path: Path) -> None:
    r = subprocess.run([*VOLACT, "host", "token", "list", "--home", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode != 0 and "not a host home" in r.stderr and "Traceback" not in r.stderr


def test_no_server_errors_under_schemathesis(console: ConsoleHost) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    headers = {"Authorization": f"Bearer {console.token}"}
    schema = schemathesis.openapi.from_url(
        console.url + "/api/v1/openapi.json", headers=headers
    )
    from hypothesis import HealthCheck, given, settings

    failures = []
    for op in schema.get_all_operations():
        operation = op.ok()

        @settings(max_examples=12, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy())
        def check(case: object) -> None:
            response = case.call(headers=headers, base_url=console.url)  # type: ignore[attr-defined]
            if response.status_code >= 500:
                failures.append((case, response.status_code))
            assert response.status_code in (200, 400)

        check()
    assert not failures


def test_fleet_shows_peers_and_a_silent_one_as_silent(
    console: ConsoleHost, tmp_path: Path
) -> None:
    home = tmp_path / "other"
    make_host_home(home)
    _, token = tokens.create(home, "t", now=0)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    fleet_file = home / FLEET_FILE
    fleet_file.write_text(json.dumps({"format": "volact-console-fleet", "hosts": [
        {"name": "peer <b>", "url": console.url, "token": console.token},
        {"name": "gone", "url": f"http://127.0.0.1:{dead}", "token": "vat_x"},
        {"name": "wrong token", "url": console.url, "token": "vat_wrong"},
    ]}))  # fmt: skip
    fleet_file.chmod(0o600)
    host = Host(home, ["127.0.0.1:0"], "--console", "127.0.0.1:0")
    try:
        url = "http://" + json.loads((home / SERVE_FILE).read_text())["console"]
        headers = {"Authorization": f"Bearer {token}"}
        obj = httpx.get(url + "/api/v1/fleet", headers=headers, timeout=30).json()
        own, peer, gone, wrong = obj["hosts"]
        assert own["answered"] and own["count"] == 0
        assert peer["answered"] and peer["count"] == console.cli_json("status")["count"] == 30
        assert not gone["answered"] and "count" not in gone
        assert not wrong["answered"] and "401" in wrong["error"]
        page = httpx.get(url + "/fleet", headers=headers, timeout=30).text
        assert "peer &lt;b&gt;" in page and "no answer" in page
        assert console.token not in page and console.token not in json.dumps(obj)
        fleet_file.chmod(0o644)  # a fleet file others can read is refused, clearly
        r = httpx.get(url + "/api/v1/fleet", headers=headers, timeout=30)
        assert r.status_code == 503 and "chmod 600" in r.json()["error"]
    finally:
        assert host.stop() == 0
