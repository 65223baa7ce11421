"""`volact host rebalance` against a host home and a running host: the CLI, the
pick-up without a restart, the status object, events and Prometheus metrics, and
the store's schema upgrade. Real processes and sockets; no DNS here."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from test_host_server import Host, activate, request
from volact.cli import main
from volact.documents import ActivationTicket
from volact.host import admin
from volact.host.config import SERVE_FILE
from volact.host.rebalance import selects
from volact.host.rebalance_file import REBALANCE_FILE
from volact.host.store import HostStore
from volact.testing.hosts import make_host_home
from volact.wire import Result


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _metric(url: str, name: str) -> float:
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        for s in family.samples:
            if s.name == name:
                return float(s.value)
    raise AssertionError(f"no metric {name}")


def test_cli_on_a_stopped_host_and_bad_input(tmp_path: Path) -> None:
    home = tmp_path / "host"
    make_host_home(home)
    code, out, _ = _cli(["host", "rebalance", "--home", str(home), "--json"])
    assert code == 0 and json.loads(out)["rebalance"] is None
    for bad in ("0", "101", "abc", "12.345", "nan"):
        code, _, err = _cli(["host", "rebalance", "--home", str(home), "--share", bad])
        assert code == 2 and "--share" in err, (bad, err)
    code, _, err = _cli(["host", "rebalance", "--home", str(home), "--share", "5", "--stop"])
    assert code == 2 and "not allowed with" in err
    code, out, _ = _cli(["host", "rebalance", "--home", str(home), "--share", "12.5"])
    assert code == 0 and "12.5 % of clients" in out and "not running" in out
    st = admin.status(home, now=int(time.time()))
    assert st["rebalance"]["share"] == 12.5 and st["rebalance"]["told"] == 0
    code, out, _ = _cli(["host", "status", "--home", str(home)])
    assert "rebalance:   12.5 %; told 0" in out
    # A damaged setting is a clear error, not a traceback.
    (home / REBALANCE_FILE).write_text("{not json")
    code, _, err = _cli(["host", "status", "--home", str(home)])
    assert code != 0 and "rebalance.json is not valid JSON" in err
    code, _, _ = _cli(["host", "rebalance", "--home", str(home), "--stop"])
    assert code == 0 and not (home / REBALANCE_FILE).exists()
    code, _, err = _cli(["host", "rebalance", "--home", str(tmp_path / "nope"), "--share", "5"])
    assert code != 0 and err


def test_a_running_host_picks_the_share_up_and_reports_progress(tmp_path: Path) -> None:
    home = tmp_path / "host"
    profile, _, _ = make_host_home(home)
    host = Host(home, ["127.0.0.1:0"], "--metrics", "127.0.0.1:0")
    try:
        url = f"http://{json.loads((home / SERVE_FILE).read_text())['metrics']}/metrics"
        assert _metric(url, "volact_host_rebalance_share") == 0
        reqs = [replace(request(profile, i, group="server"), version=2) for i in range(40)]
        for r in reqs:  # 40 > threshold 5: the last 35 are granted
            activate(host.addr(), r)
        code, _, _ = _cli(["host", "rebalance", "--home", str(home), "--share", "50"])
        assert code == 0
        deadline = time.monotonic() + 10
        while _metric(url, "volact_host_rebalance_share") != 50:
            assert time.monotonic() < deadline, "the running host did not pick the share up"
            time.sleep(0.05)
        host_id = bytes.fromhex(admin.status(home, now=int(time.time()))["host_id"])
        told = 0
        for r in reqs:
            reply = activate(host.addr(), r)
            assert reply.result is Result.OK and reply.ticket is not None
            ticket = ActivationTicket.decode(reply.ticket)[0]
            assert ticket.move is selects(r.cmid.bytes, host_id, 5000)
            told += ticket.move
        assert 5 < told < 35
        # An old (version-1) client is served as before and never asked to move.
        old = activate(host.addr(), request(profile, 99, group="server"))
        assert old.version == 1 and old.ticket is not None and len(old.ticket) == 150
        assert _metric(url, "volact_host_moves_told_total") == told
        assert _metric(url, "volact_host_rebalance_told") == told
        assert _metric(url, "volact_host_rebalance_remaining") == 41  # nobody left yet
        st = admin.status(home, now=int(time.time()))["rebalance"]
        assert (st["told"], st["left"], st["remaining"], st["empty"]) == (told, 0, 41, False)
        # Four hours on, the told clients that did not come back have left.
        later = admin.status(home, now=int(time.time()) + 4 * 3600 + 60)["rebalance"]
        assert (later["left"], later["remaining"]) == (told, 41 - told)
        events = admin.events(home, limit=1000)["events"]
        assert sum(e["kind"] == "move_told" for e in events) == told
        assert any(e["kind"] == "rebalance_set" for e in events)
        # A damaged setting keeps the one in force, and says so.
        (home / REBALANCE_FILE).write_text("[]")
        deadline = time.monotonic() + 10
        while not any(e["kind"] == "rebalance_failed" for e in admin.events(home)["events"]):
            assert time.monotonic() < deadline, "no rebalance_failed event"
            time.sleep(0.05)
        assert _metric(url, "volact_host_rebalance_share") == 50
        (home / REBALANCE_FILE).unlink()
        deadline = time.monotonic() + 10
        while _metric(url, "volact_host_rebalance_share") != 0:
            assert time.monotonic() < deadline, "the running host did not stop"
            time.sleep(0.05)
        reply = activate(host.addr(), reqs[0])
        assert reply.ticket is not None and not ActivationTicket.decode(reply.ticket)[0].move
    finally:
        assert host.stop() == 0


def test_a_version_1_store_is_upgraded_with_nobody_told(tmp_path: Path) -> None:
    home = tmp_path / "host"
    make_host_home(home)
    HostStore.open(home).close()
    db = sqlite3.connect(home / "store.sqlite")
    db.execute("ALTER TABLE clients DROP COLUMN told_at")
    row = (b"c" * 16, b"s" * 16)
    db.execute("INSERT INTO clients VALUES (?, ?, 'pc', '192.0.2.1', 0, 1, 2, 0, 3)", row)
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with HostStore.open(home) as store:
        db = sqlite3.connect(home / "store.sqlite")
        assert db.execute("SELECT told_at FROM clients").fetchall() == [(0,)]
        db.close()
        assert store.rebalance_figures(since=0, active_since=0, left_before=10) == (0, 1, 0)
