"""Settings reach a running host without a restart (issue 12 item 2).

`host set` and `host dns` save, then signal the serving process (SIGHUP,
volact.host.reload); the next exchange uses the new intervals, and DNS publishing
starts at once against a real BIND. Settings that need a restart say so. `host
init` takes the machine's FQDN and publishing refuses `localhost`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from services import Bind9
from test_host_server import Host, exchange, request
from volact import wire
from volact.cli import main
from volact.errors import ConfigurationError
from volact.host.reload import Reloader, notify
from volact.testing.hosts import make_host_home


def wait_for(what: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.05)
    return False


def _events(home: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["host", "events", "--home", str(home), "--json"]) == 0
    events: list[dict[str, object]] = json.loads(capsys.readouterr().out)["events"]
    return events


def test_host_set_reaches_a_running_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "host"
    profile, _, _ = make_host_home(home)
    host = Host(home, ["127.0.0.1:0"])
    try:
        reply = wire.decode(exchange(host.addr(), wire.encode(request(profile, 1))))
        assert isinstance(reply, wire.ActivateReply) and reply.activation_interval == 120
        capsys.readouterr()
        assert main(["host", "set", "--home", str(home), "--activation-interval", "60",
                     "--renewal-interval", "1440", "--json"]) == 0  # fmt: skip
        obj = json.loads(capsys.readouterr().out)
        assert obj["reloaded"] is True and obj["restart_needed"] is False
        assert obj["running_pid"] == host.proc.pid
        assert wait_for(lambda: any(e["kind"] == "reload" for e in _events(home, capsys)))
        reply = wire.decode(exchange(host.addr(), wire.encode(request(profile, 2))))
        assert isinstance(reply, wire.ActivateReply)
        assert (reply.activation_interval, reply.renewal_interval) == (60, 1440)
        # A port change cannot apply to a bound socket: the command says so plainly.
        assert main(["host", "set", "--home", str(home), "--port", "11688"]) == 0
        out = capsys.readouterr().out
        assert "port apply only after a restart" in out
    finally:
        assert host.stop() == 0
    assert main(["host", "set", "--home", str(home), "--activation-interval", "90"]) == 0
    assert "no host is serving on this home" in capsys.readouterr().out


def test_a_failing_reload_hook_keeps_the_others_and_is_recorded() -> None:
    events: list[tuple[str, str]] = []
    r = Reloader(lambda kind, msg: events.append((kind, msg)))

    def broken() -> str:
        raise ConfigurationError("host.json is not valid JSON")

    r.add("settings", broken)
    r.add("dns", lambda: "restarted")
    r.reload()
    assert events == [
        ("reload_failed", "settings: host.json is not valid JSON (previous settings kept)"),
        ("reload", "dns: restarted"),
    ]


def test_notify_without_a_host(tmp_path: Path) -> None:
    home = tmp_path / "h"
    make_host_home(home)
    notice = notify(home, ["port", "activation_interval"])
    assert notice.pid is None and notice.to_json()["reloaded"] is False


def test_host_dns_enable_publishes_from_a_running_host(
    tmp_path: Path, bind9: Bind9, capsys: pytest.CaptureFixture[str]
) -> None:
    fqdn = "reload-test.corp.example"
    home = tmp_path / "host"
    make_host_home(home, fqdn=fqdn)
    key = bind9.write_key_file(tmp_path / "host.key")
    assert main(["host", "dns", "--home", str(home), "--server", f"127.0.0.1:{bind9.port}",
                 "--tsig-key-file", str(key), "--address", "192.0.2.77"]) == 0  # fmt: skip
    host = Host(home, ["127.0.0.1:0"])
    try:
        capsys.readouterr()
        assert main(["host", "dns", "--home", str(home), "--enable"]) == 0
        assert "without a restart" in capsys.readouterr().err

        def published() -> bool:
            answer = bind9.query("_volact._tcp.corp.example", "SRV").answer
            return any(fqdn in rr.to_text() for rrset in answer for rr in rrset)

        assert wait_for(published), _events(home, capsys)
        assert any(e["kind"] == "reload" for e in _events(home, capsys))
    finally:
        assert host.stop() == 0
    assert main(["host", "dns", "unpublish", "--home", str(home)]) == 0


def test_init_takes_the_machine_fqdn_and_publishing_refuses_localhost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    profile = tmp_path / "profile.json"
    make_host_home(tmp_path / "x")
    profile.write_bytes((tmp_path / "x" / "profile.json").read_bytes())
    monkeypatch.setattr(socket, "getfqdn", lambda name="": "kms7.corp.example")
    assert main(["host", "init", "--home", str(tmp_path / "a"), "--profile", str(profile),
                 "--json"]) == 0  # fmt: skip
    obj = json.loads(capsys.readouterr().out)
    assert obj["fqdn"] == "kms7.corp.example" and obj["warning"] is None
    monkeypatch.setattr(socket, "getfqdn", lambda name="": "localhost")
    home = tmp_path / "b"
    assert main(["host", "init", "--home", str(home), "--profile", str(profile)]) == 0
    assert "not a fully qualified domain name" in capsys.readouterr().err
    code = main(["host", "dns", "--home", str(home), "--server", "127.0.0.1:53", "--enable"])
    assert code == 1 and "send every client to itself" in capsys.readouterr().err
    # Even with a domain to publish into, the name localhost is never published.
    assert main(["host", "dns", "--home", str(home), "--server", "127.0.0.1:53",
                 "--domain", "corp.example"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["host", "dns", "publish", "--home", str(home)]) == 1
    assert "'localhost'" in capsys.readouterr().err
