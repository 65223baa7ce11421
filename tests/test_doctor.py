"""`volact host doctor` and `volact client doctor` name the first broken link (issue 12 item 4).

Each test breaks one link of a real setup (real sockets, a real host process, a real
BIND) and checks that the doctor stops there, says why and gives the fix; exit 0
only when every check passes.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from client_support import CATALOG, PROFILE, SERVER, VENDOR
from services import Bind9
from test_host_server import Host, exchange
from volact import wire
from volact.cli import main
from volact.testing.hosts import make_host_home
from volact.testing.processes import free_port


def doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = main([*argv, "--json"])
    obj = json.loads(capsys.readouterr().out)
    assert code == (0 if obj["ok"] else 1)
    return code, obj


def statuses(obj: dict[str, object]) -> dict[str, str]:
    checks = obj["checks"]
    assert isinstance(checks, list)
    return {c["name"]: c["status"] for c in checks}


@pytest.fixture
def junk_server() -> Iterator[int]:
    """A TCP service that is not volact: it answers every connection with HTTP."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 18000\r\n\r\n"
                                 + b"x" * 18000)  # fmt: skip
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(5)
    srv.close()


def _served_host(tmp_path: Path) -> tuple[Path, Host]:
    home = tmp_path / "host"
    make_host_home(home, vendor=VENDOR, catalog=CATALOG)
    return home, Host(home, ["127.0.0.1:0"])


def test_host_doctor_walks_to_the_first_break(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], junk_server: int
) -> None:
    home = tmp_path / "h"
    make_host_home(home, activated=False)
    _, obj = doctor(capsys, "host", "doctor", "--home", str(home))
    assert obj["first_broken"] == "license" and "host activate" in str(obj["fix"])
    assert statuses(obj)["count"] == "not_checked"

    home, host = _served_host(tmp_path)
    try:
        _, obj = doctor(capsys, "host", "doctor", "--home", str(home))
        # Serving, no DNS publishing, nobody has asked yet: the count is the break.
        assert obj["first_broken"] == "count", obj
        st = statuses(obj)
        assert st["serving"] == st["port"] == st["dns_rights"] == st["store"] == "ok"
        # Five servers ask: every check passes and the exit status is 0.
        for i in range(5):
            req = wire.ActivateRequest(SERVER.id, uuid.uuid4(), os.urandom(16),
                                       int(time.time()), wire.LicenseState.GRACE,
                                       0, False, f"srv{i}")  # fmt: skip
            exchange(host.addr(), wire.encode(req))
        code, obj = doctor(capsys, "host", "doctor", "--home", str(home))
        assert code == 0 and obj["ok"] is True
    finally:
        host.stop()
    _, obj = doctor(capsys, "host", "doctor", "--home", str(home))
    assert obj["first_broken"] == "serving" and "systemctl start" in str(obj["fix"])
    (home / "host-key.pem").chmod(0o644)
    _, obj = doctor(capsys, "host", "doctor", "--home", str(home))
    assert obj["first_broken"] == "home" and "chmod 600" in str(obj["fix"])


def test_host_doctor_checks_dns_rights_by_a_dry_run(
    tmp_path: Path, bind9: Bind9, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "host"
    make_host_home(home, fqdn="doctor-host.corp.example")
    good = bind9.write_key_file(tmp_path / "good.key")
    bad = tmp_path / "bad.key"
    bad.write_text(good.read_text().replace(bind9.tsig_secret_b64,
                                            "c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1vbmU="))  # fmt: skip
    assert main(["host", "dns", "--home", str(home), "--server", f"127.0.0.1:{bind9.port}",
                 "--tsig-key-file", str(bad), "--address", "127.0.0.1",
                 "--enable"]) == 0  # fmt: skip
    host = Host(home, ["127.0.0.1:0"])
    try:
        _, obj = doctor(capsys, "host", "doctor", "--home", str(home))
        assert obj["first_broken"] == "dns_rights", obj
        broken = next(c for c in obj["checks"] if c["name"] == "dns_rights")  # type: ignore[union-attr]
        assert "NOTAUTH" in broken["detail"] or "REFUSED" in broken["detail"]
        assert "update-policy" in broken["fix"]
        assert main(["host", "dns", "--home", str(home), "--tsig-key-file", str(good)]) == 0
        # The reload republishes with the good key; then only the count is short.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            _, obj = doctor(capsys, "host", "doctor", "--home", str(home))
            if obj["first_broken"] == "count":
                break
            time.sleep(0.2)
        st = statuses(obj)
        assert st["dns_rights"] == "ok" and st["srv_answer"] == "ok", obj
        assert obj["first_broken"] == "count"
    finally:
        host.stop()
    assert main(["host", "dns", "unpublish", "--home", str(home)]) == 0


def test_client_doctor_names_the_broken_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], junk_server: int, bind9: Bind9
) -> None:
    _, obj = doctor(capsys, "client", "doctor", "--home", str(tmp_path / "none"))
    assert obj["first_broken"] == "home" and "client init" in str(obj["fix"])

    profile = tmp_path / "profile.json"
    profile.write_text(PROFILE.dumps())
    home = str(tmp_path / "c")
    assert main(["client", "init", "--home", home, "--profile", str(profile),
                 "--sku", SERVER.name, "--workstation", "doc-1"]) == 0  # fmt: skip
    # DNS discovery in a domain with no SRV record (a name no other test publishes in).
    empty = f"nohost-{uuid.uuid4().hex[:8]}.corp.example"
    assert main(["client", "set-domain", "--home", home, empty]) == 0
    ns = ["--nameserver", f"127.0.0.1:{bind9.port}"]
    _, obj = doctor(capsys, "client", "doctor", "--home", home, *ns)
    assert obj["first_broken"] == "discovery" and "host dns" in str(obj["fix"])
    # Nothing listens.
    assert main(["client", "set-host", "--home", home, f"127.0.0.1:{free_port()}"]) == 0
    _, obj = doctor(capsys, "client", "doctor", "--home", home)
    assert obj["first_broken"] == "reachable" and "firewall" in str(obj["fix"])
    # An HTTP server on the port: "not a volact host", not a byte count.
    assert main(["client", "set-host", "--home", home, f"127.0.0.1:{junk_server}"]) == 0
    _, obj = doctor(capsys, "client", "doctor", "--home", home)
    assert obj["first_broken"] == "volact_host", obj
    broken = next(c for c in obj["checks"] if c["name"] == "volact_host")  # type: ignore[union-attr]
    assert "not as a volact host" in broken["detail"]
    # `activate` says the same, not a byte count (issue 12), and the machine is in grace.
    capsys.readouterr()
    assert main(["client", "activate", "--home", home]) == 75
    assert "that is not a volact host" in capsys.readouterr().err
    # A real host below the server threshold (5): the count is the break.
    _, host = _served_host(tmp_path)
    try:
        assert main(["client", "set-host", "--home", home, f"127.0.0.1:{host.addr()[1]}"]) == 0
        _, obj = doctor(capsys, "client", "doctor", "--home", home)
        assert obj["first_broken"] == "count", obj
        assert "count too low" in json.dumps(obj) and statuses(obj)["clock"] == "ok"
        for i in range(4):
            other = str(tmp_path / f"o{i}")
            assert main(["client", "init", "--home", other, "--profile", str(profile),
                         "--sku", SERVER.name]) == 0  # fmt: skip
            assert main(["client", "set-host", "--home", other,
                         f"127.0.0.1:{host.addr()[1]}"]) == 0  # fmt: skip
            main(["client", "activate", "--home", other])
        code, obj = doctor(capsys, "client", "doctor", "--home", home)
        assert code == 0 and obj["ok"] is True, obj
        capsys.readouterr()
        assert main(["client", "doctor", "--home", home]) == 0
        assert "all checks passed" in capsys.readouterr().out
        # For a licensed machine the doctor's request is what the agent sends: a renewal.
        assert main(["client", "activate", "--home", home]) == 0
        doctor(capsys, "client", "doctor", "--home", home)
        capsys.readouterr()
        assert main(["host", "report", "activity", "--home", str(host.home), "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)["rows"]
        assert sum(r["renewals"] for r in rows) == 1
    finally:
        host.stop()
