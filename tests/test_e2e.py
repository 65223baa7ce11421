"""The whole system as separate processes: authority, two hosts, BIND 9, 30 client CLIs.

Every ``volact`` command here runs as its own process (``python -m volact ...``), the
way an administrator runs them. Host A (IPv4) publishes with SRV priority 0 and host
B (IPv6 only, ``[::1]``) with priority 10 into the same zone of a real BIND 9, so
all 30 clients (host caching on, ``set-domain`` + ``--nameserver``) land on A first:
24 are refused "count too low", 6 activated, and the refused ones activated on
retry. Then A is SIGKILLed: each client's next attempt finds its cached host dead,
re-reads DNS and fails over to B, which counts them from zero (refusing the first
24 renewals, so those machines stay licensed on their old tickets, and granting the
rest). Restarted, A still knows its count of 30: the store is durable.

The module runs a ``named`` of its own serving ``e2e.example.`` (the session
``bind9`` fixture's zones are shared with other tests, whose records would change
which host clients pick); like that fixture it skips without BIND 9, and fails
under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dns.rdatatype
import pytest

from services import Bind9, ServiceMissing, ipv6_loopback_available

pytestmark = pytest.mark.slow

ZONE = "e2e.example"
LABEL = "_volact._tcp"
DESKTOP = "Acme Desktop 2026 Professional"  # desktop group: threshold 25
CLIENTS = 30
THRESHOLD = 25
#: Client CLI processes at once: each is mostly interpreter start-up (CPU), 2 cores.
PARALLEL = 4
COMMAND_TIMEOUT = 60.0


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def volact(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one volact command as a separate process (bounded in time)."""
    proc = subprocess.run(
        [sys.executable, "-m", "volact", *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"volact {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def volact_json(*args: str, check: bool = True) -> dict[str, Any]:
    proc = volact(*args, "--json", check=check)
    obj = json.loads(proc.stdout)
    assert isinstance(obj, dict)
    return obj


def _wait_for(predicate: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


class Server:
    """A ``volact ... serve`` process; ``serve.json`` in its home says when it is up."""

    def __init__(self, name: str, home: Path, *argv: str) -> None:
        self.name = name
        self.home = home
        self.argv = argv
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> Server:
        with open(self.home.parent / f"{self.name}.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "volact", *self.argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        pid = self.proc.pid
        _wait_for(lambda: self._ready(pid), f"{self.name} to serve")
        return self

    def _ready(self, pid: int) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.home.parent / f"{self.name}.log").read_text(errors="replace")
            pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{log[-3000:]}")
        try:  # serve.json may be missing, stale (a killed run's) or half-written
            info = json.loads((self.home / "serve.json").read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(info, dict) or info.get("pid", pid) != pid:
            return False
        self.info = info
        return True

    @property
    def port(self) -> int:
        return int(self.info["ports"][0] if "ports" in self.info else self.info["port"])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=COMMAND_TIMEOUT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def named() -> Iterator[Bind9]:
    try:
        server = Bind9(zones=(ZONE,))
    except ServiceMissing as exc:
        if _in_ci():
            pytest.fail(f"{exc} (CI=true: the CI host must provide it; run `make deps`)")
        pytest.skip(f"{exc} (or run `make deps` as root)")
    with server:
        yield server


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        yield started
    finally:
        for s in reversed(started):
            s.stop()


def _srv(named: Bind9) -> dict[str, tuple[int, int, int]]:
    reply = named.query(f"{LABEL}.{ZONE}", "SRV")
    return {
        rd.target.to_text(omit_final_dot=True): (rd.priority, rd.weight, rd.port)
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.SRV
        for rd in rrset
    }


def _addresses(named: Bind9, name: str, rdtype: str) -> set[str]:
    reply = named.query(name, rdtype)
    return {rd.to_text() for rrset in reply.answer for rd in rrset}


def _make_host(root: Path, name: str, profile: Path, url: str, key: str, named: Bind9,
               key_file: Path, priority: int) -> Path:  # fmt: skip
    home = root / name
    volact("host", "init", "--home", str(home), "--profile", str(profile),
           "--fqdn", f"{name}.{ZONE}")  # fmt: skip
    volact("host", "install-key", "--home", str(home), key)
    activated = volact_json("host", "activate", "--home", str(home), "--authority", url)
    assert activated["activated"] and "desktop" in activated["licensed_groups"]
    volact("host", "dns", "--home", str(home), "--server", f"127.0.0.1:{named.port}",
           "--tsig-key-file", str(key_file), "--priority", str(priority), "--enable")  # fmt: skip
    return home


def _activate(home: Path, named: Bind9) -> tuple[int, dict[str, Any]]:
    proc = volact("client", "activate", "--home", str(home), "--nameserver",
                  f"127.0.0.1:{named.port}", "--json", check=False)  # fmt: skip
    return proc.returncode, json.loads(proc.stdout)


def _host_name(status: dict[str, Any]) -> str:
    host = status["host"]
    assert isinstance(host, str), status
    return host.rsplit(":", 1)[0]


def test_whole_system_as_processes_with_failover(
    tmp_path: Path, named: Bind9, servers: list[Server]
) -> None:
    if not ipv6_loopback_available():
        pytest.skip("no ::1 here: host B must listen IPv6-only")
    pool = ThreadPoolExecutor(PARALLEL)
    run = pool.map

    # The vendor: an authority process, a host key for two hosts, the profile.
    auth = tmp_path / "authority"
    volact("authority", "init", "--home", str(auth), "--demo-catalog")
    key = volact_json("authority", "issue-key", "--home", str(auth), "--kind", "host",
                      "--group", "server", "--activations", "2")["key"]  # fmt: skip
    authority = Server("authority", auth, "authority", "serve", "--home", str(auth),
                       "--listen", "127.0.0.1:0")  # fmt: skip
    servers.append(authority.start())
    url = str(authority.info["url"])
    profile = tmp_path / "profile.json"
    volact("authority", "export-profile", "--home", str(auth), "--out", str(profile),
           "--authority-url", url)  # fmt: skip

    # Two hosts activated online, publishing into the same zone: A first (priority 0).
    key_file = named.write_key_file(tmp_path / "tsig.key")
    home_a, home_b = run(
        lambda spec: _make_host(tmp_path, spec[0], profile, url, key, named, key_file, spec[1]),
        [("a", 0), ("b", 10)],
    )
    a = Server("host-a", home_a, "host", "serve", "--home", str(home_a),
               "--listen", "127.0.0.1:0")  # fmt: skip
    b = Server("host-b", home_b, "host", "serve", "--home", str(home_b), "--listen", "[::1]:0")
    servers += [a.start(), b.start()]
    assert b.info["addresses"] == [f"[::1]:{b.port}"]  # IPv6 only
    want = {f"a.{ZONE}": (0, 0, a.port), f"b.{ZONE}": (10, 0, b.port)}
    _wait_for(lambda: _srv(named) == want, "both hosts' SRV records")
    assert _addresses(named, f"b.{ZONE}", "AAAA") == {"::1"}
    assert _addresses(named, f"b.{ZONE}", "A") == set()

    # 30 machines, found through DNS (no manual host), host caching on (the default).
    clients = [tmp_path / "clients" / f"pc-{i:02d}" for i in range(1, CLIENTS + 1)]

    def make_client(home: Path) -> None:
        volact("client", "init", "--home", str(home), "--profile", str(profile),
               "--sku", DESKTOP, "--workstation", home.name, "--vm", "no")  # fmt: skip
        volact("client", "set-domain", "--home", str(home), ZONE)

    list(run(make_client, clients))

    first = dict(zip(clients, run(lambda h: _activate(h, named), clients), strict=True))
    results = Counter(st["result"] for _, st in first.values())
    assert results == {"count_too_low": THRESHOLD - 1, "ok": CLIENTS - THRESHOLD + 1}, first
    for code, st in first.values():
        assert _host_name(st) == f"a.{ZONE}"  # priority 0 wins while A answers
        assert (code == 0) == st["activated"] == (st["result"] == "ok")
        assert st["required_count"] == THRESHOLD
    refused = [h for h, (_, st) in first.items() if st["result"] == "count_too_low"]
    assert sorted(st["count"] for h, (_, st) in first.items() if h in refused) == list(
        range(1, THRESHOLD)
    )
    retried = list(run(lambda h: _activate(h, named), refused))
    assert all(code == 0 and st["activated"] and st["count"] == CLIENTS for code, st in retried)

    status_a = volact_json("host", "status", "--home", str(home_a))
    status_b = volact_json("host", "status", "--home", str(home_b))
    assert (status_a["count"], status_b["count"]) == (CLIENTS, 0)
    assert status_a["requests_by_result"]["count_too_low"] == THRESHOLD - 1
    busiest = max(
        (a, b), key=lambda s: volact_json("host", "status", "--home", str(s.home))["count"]
    )
    assert busiest is a

    # SIGKILL the host that activated them all; each client's next attempt fails over.
    a.kill()
    after = list(run(lambda h: _activate(h, named), clients))
    results = Counter(st["result"] for _, st in after)
    assert results == {"count_too_low": THRESHOLD - 1, "ok": CLIENTS - THRESHOLD + 1}, after
    for code, st in after:
        assert _host_name(st) == f"b.{ZONE}", st
        # Refused renewals leave the machine licensed on its ticket from A: exit 0.
        assert code == 0 and st["activated"] and st["state"] == "licensed", st
        assert st["cached_host"] is not None and st["cached_host"].startswith(f"b.{ZONE}")
    events = volact_json("client", "events", "--home", str(clients[0]), "--limit", "20")["events"]
    failed = [e for e in events if e["event"] == "host_failed"]
    assert failed and failed[-1]["host"].startswith(f"a.{ZONE}"), events
    status_b = volact_json("host", "status", "--home", str(home_b))
    assert status_b["count"] == CLIENTS
    assert status_b["requests_by_result"] == {"count_too_low": THRESHOLD - 1,
                                              "ok": CLIENTS - THRESHOLD + 1} | {
        k: 0 for k in status_b["requests_by_result"] if k not in ("count_too_low", "ok")
    }  # fmt: skip

    # Restarted after the SIGKILL, A still knows every machine it counted.
    a2 = Server("host-a", home_a, "host", "serve", "--home", str(home_a),
                "--listen", "127.0.0.1:0")  # fmt: skip
    servers.append(a2.start())
    status_a = volact_json("host", "status", "--home", str(home_a))
    assert status_a["serving"] and status_a["pid"] == a2.info["pid"]
    assert status_a["count"] == CLIENTS and status_a["known_clients"] == CLIENTS
    assert status_a["requests_by_result"]["ok"] == CLIENTS
    pool.shutdown()
