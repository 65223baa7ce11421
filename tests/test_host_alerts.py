"""`volact host alerts`: what an administrator is told (SPEC §5 admin surface)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from test_host_server import Host, activate, request
from volact.cli import main
from volact.host import admin
from volact.testing.hosts import make_host_home
from volact.wire import Result

DAY = 86400


def _codes(obj: dict[str, object]) -> set[str]:
    alerts = obj["alerts"]
    assert isinstance(alerts, list)
    return {a["code"] for a in alerts}


def test_alerts_follow_the_hosts_life(tmp_path: Path) -> None:
    home = tmp_path / "host"
    profile, _, _ = make_host_home(home)
    now = int(time.time())
    fresh = admin.alerts(home, now=now)
    # Activated but never contacted, not serving, below every threshold.
    assert not fresh["ok"]
    assert _codes(fresh) == {"not_serving", "count_below_threshold", "idle"}
    assert fresh["alerts"][0]["severity"] == "critical"

    host = Host(home, ["127.0.0.1:0"])
    try:
        replies = [activate(host.addr(), request(profile, i, group="server")) for i in range(5)]
        assert replies[-1].result is Result.OK
        serving = admin.alerts(home, now=int(time.time()))
        # 5 machines: the server group is ready, the desktop group (25) is not.
        below = [a for a in serving["alerts"] if a["code"] == "count_below_threshold"]
        assert len(below) == 1 and "desktop threshold 25" in below[0]["message"]
        assert "not_serving" not in _codes(serving) and "idle" not in _codes(serving)
    finally:
        host.stop()

    # 170 days later the grant (valid 180 days) is about to lapse and nobody has asked.
    later = admin.alerts(home, now=now + 170 * DAY, expiry_days=15)
    assert {"clients_expiring", "idle"} <= _codes(later)
    expired = admin.alerts(home, now=now + 200 * DAY)
    assert "clients_expired" in _codes(expired)


def test_alerts_cli_json_and_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "host"
    make_host_home(home, activated=False)
    assert main(["host", "alerts", "--home", str(home), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["ok"] is False and "host_not_activated" in _codes(obj)
    # --exit-code: the Nagios convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
    assert main(["host", "alerts", "--home", str(home), "--exit-code"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("CRITICAL")
    warn_only = tmp_path / "warn"
    make_host_home(warn_only)
    (warn_only / "serve.json").write_text(json.dumps({"pid": os.getpid(), "addresses": []}))
    assert main(["host", "alerts", "--home", str(warn_only), "--exit-code", "--json"]) == 1
    obj = json.loads(capsys.readouterr().out)
    assert obj["worst"] == "warning" and "idle" in _codes(obj)
    assert main(["host", "alerts", "--home", str(tmp_path / "nowhere"), "--exit-code"]) == 3
    out, err = capsys.readouterr()
    assert out.startswith("UNKNOWN: ") and "not a host home" in err
    assert main(["host", "alerts", "--home", str(home), "--idle-hours", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
    assert main(["host", "alerts", "--home", str(tmp_path / "nowhere")]) == 1
    assert "volact: error:" in capsys.readouterr().err


def test_a_count_flood_in_the_last_day_is_an_alert(tmp_path: Path) -> None:
    from volact.host.store import HostStore

    home = tmp_path / "host"
    make_host_home(home)
    now = int(time.time())
    assert "count_flood" not in _codes(admin.alerts(home, now=now))
    with HostStore.open(home) as store:
        store.add_event(now - 2 * DAY, "count_flood", "old news")
    assert "count_flood" not in _codes(admin.alerts(home, now=now))
    with HostStore.open(home) as store:
        store.add_event(now - 3600, "count_flood", "5 machines new to the count refused")
    found = [a for a in admin.alerts(home, now=now)["alerts"] if a["code"] == "count_flood"]
    assert len(found) == 1 and found[0]["severity"] == "warning"
    assert "5 machines new to the count refused" in found[0]["message"]
