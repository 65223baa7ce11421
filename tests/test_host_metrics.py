"""`volact host serve --metrics`: Prometheus metrics read from the live host."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from test_host_server import Host, activate, request
from volact.host import admin
from volact.host.config import SERVE_FILE, STORE_FILE
from volact.host.metrics import MAX_SCRAPERS as METRICS_CAP
from volact.host.metrics import READ_TIMEOUT, VALIDITY_REFRESH
from volact.host.store import DAY
from volact.testing.hosts import make_host_home
from volact.wire import Result


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_follow_requests(tmp_path: Path) -> None:
    home = tmp_path / "host"
    profile, _, _ = make_host_home(home)
    host = Host(home, ["127.0.0.1:0"], "--metrics", "127.0.0.1:0")
    try:
        metrics = json.loads((home / SERVE_FILE).read_text())["metrics"]
        url = f"http://{metrics}/metrics"
        before = _samples(httpx.get(url, timeout=5).text)
        assert before[("volact_host_count", ())] == 0
        assert before[("volact_host_activated", ())] == 1
        assert before[("volact_host_threshold", (("group", "desktop"),))] == 25
        replies = [activate(host.addr(), request(profile, i, group="server")) for i in range(6)]
        assert [r.result for r in replies].count(Result.OK) == 2
        with socket.create_connection(host.addr(), timeout=5) as s:
            s.sendall(b"\xff\xff garbage")
            s.recv(10)
        after = _samples(httpx.get(url, timeout=5).text)
        assert after[("volact_host_count", ())] == 6
        assert after[("volact_host_requests_total", (("result", "ok"),))] == 2
        assert after[("volact_host_requests_total", (("result", "count_too_low"),))] == 4
        assert after[("volact_host_malformed_total", ())] >= 1
        assert after[("volact_host_replies_total", ())] >= 6
        # Anything but GET /metrics is a 404; a scraper that hangs up changes nothing.
        assert httpx.get(f"http://{metrics}/other", timeout=5).status_code == 404
        m_host, m_port = metrics.rsplit(":", 1)
        with socket.create_connection((m_host, int(m_port)), timeout=5):
            pass
        assert httpx.get(url, timeout=5).status_code == 200
    finally:
        assert host.stop() == 0


def test_client_validity_figures_equal_the_licensing_report(tmp_path: Path) -> None:
    home = tmp_path / "host"
    profile, _, _ = make_host_home(home)
    host = Host(home, ["127.0.0.1:0"], "--metrics", "127.0.0.1:0")
    try:
        replies = [activate(host.addr(), request(profile, i, group="server")) for i in range(8)]
        assert [r.result for r in replies].count(Result.OK) == 4
        # Of the four licensed, one ends in 3 days and one ended yesterday.
        now = int(time.time())
        with contextlib.closing(sqlite3.connect(home / STORE_FILE, timeout=10)) as db, db:
            ids = [r[0] for r in db.execute(
                "SELECT cmid FROM clients WHERE valid_until > 0 ORDER BY cmid")]  # fmt: skip
            db.execute("UPDATE clients SET valid_until = ? WHERE cmid = ?", (now + 3 * DAY, ids[0]))
            db.execute("UPDATE clients SET valid_until = ? WHERE cmid = ?", (now - DAY, ids[1]))
        url = f"http://{json.loads((home / SERVE_FILE).read_text())['metrics']}/metrics"
        got = _samples(httpx.get(url, timeout=15).text)  # the first scrape waits for a scan
        summary = admin.licensing(home, now=int(time.time()))["summary"]
        assert (summary["known_clients"], summary["expiring"], summary["expired"]) == (8, 1, 1)
        for metric, key in (("known", "known_clients"), ("licensed", "licensed"),
                            ("expiring", "expiring"), ("expired", "expired")):  # fmt: skip
            assert got[(f"volact_host_clients_{metric}", ())] == summary[key], metric
        assert abs(got[("volact_host_clients_scan_timestamp_seconds", ())] - now) < 60
        # DNS publishing is off: no per-domain failure series.
        assert not any(name == "volact_host_dns_publish_failures" for name, _ in got)
        # Within the refresh period a scrape reuses the scan (the figures stay put).
        with contextlib.closing(sqlite3.connect(home / STORE_FILE, timeout=10)) as db, db:
            db.execute("UPDATE clients SET valid_until = ? WHERE cmid = ?", (now - DAY, ids[2]))
        assert VALIDITY_REFRESH >= 60
        again = _samples(httpx.get(url, timeout=15).text)
        assert again[("volact_host_clients_expired", ())] == 1
    finally:
        assert host.stop() == 0


def test_slow_scrapers_cannot_hold_the_metrics_port(tmp_path: Path) -> None:
    home = tmp_path / "host"
    profile, _, _ = make_host_home(home)
    host = Host(home, ["127.0.0.1:0"], "--metrics", "127.0.0.1:0")
    slow: list[socket.socket] = []
    try:
        m_host, m_port = json.loads((home / SERVE_FILE).read_text())["metrics"].rsplit(":", 1)
        # More slow scrapers than allowed, each dribbling header lines.
        for _ in range(METRICS_CAP + 4):
            s = socket.create_connection((m_host, int(m_port)), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.0\r\nX-Slow: 1\r\n")
            slow.append(s)
        # The activation port is served meanwhile, and the extra scrapers were closed.
        assert activate(host.addr(), request(profile, 1)).result is Result.COUNT_TOO_LOW
        closed = 0
        for s in slow[METRICS_CAP:]:
            s.settimeout(5)
            closed += s.recv(10) == b""
        assert closed == 4
        # A held one is cut off by the overall deadline although it keeps sending lines.
        slow[0].settimeout(1.0)
        cut = False
        for _ in range(int(READ_TIMEOUT) + 5):
            try:
                slow[0].sendall(b"X-More: 1\r\n")
                cut = slow[0].recv(10) == b""
            except TimeoutError:
                continue
            except OSError:
                cut = True
            if cut:
                break
        assert cut
    finally:
        for s in slow:
            s.close()
        assert host.stop() == 0
