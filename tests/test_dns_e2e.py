"""End to end: real hosts (``volact host serve`` processes) publish into a real BIND 9,
real clients find them there and activate.

This module runs a ``named`` of its own serving ``lab.example.``, so the SRV RRset
the clients read holds only this module's hosts. Hosts are activated with a real
(offline) host-key activation from a real authority home; clients use the embedding
API with caching off and a seeded random choice, so the spread is reproducible.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.rdatatype
import pytest

from services import Bind9, ServiceMissing
from volact.cli import main
from volact.client.api import Activation
from volact.client.srv import HostAddress
from volact.host import admin
from volact.profile import ProductProfile

pytestmark = pytest.mark.slow

ZONE = "lab.example"
LABEL = "_volact._tcp"
SKU = "Acme Server 2026 Standard"  # server group: threshold 5


def _ok(argv: list[str]) -> None:
    assert main(argv) == 0, argv


def _wait_for(predicate: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


@pytest.fixture(scope="module")
def lab() -> Iterator[Bind9]:
    try:
        server = Bind9(zones=(ZONE,))
    except ServiceMissing as exc:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{exc} (CI=true: the CI host must provide it)")
        pytest.skip(f"{exc} (or run `make deps` as root)")
    with server:
        yield server


@pytest.fixture
def lab_up(lab: Bind9) -> Iterator[Bind9]:
    lab.start()  # a test may have left it stopped
    yield lab
    lab.start()


@dataclass
class World:
    root: Path
    authority: Path
    profile_path: Path

    @property
    def profile(self) -> ProductProfile:
        return ProductProfile.loads(self.profile_path.read_bytes())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("dns-e2e")
    w = World(root, root / "authority", root / "profile.json")
    _ok(["authority", "init", "--home", str(w.authority), "--demo-catalog"])
    _ok(["authority", "export-profile", "--home", str(w.authority), "--out", str(w.profile_path)])
    return w


def _host_key(w: World) -> str:
    out = w.root / f"key-{time.monotonic_ns()}.json"
    with open(out, "w") as f, contextlib.redirect_stdout(f):
        _ok(["authority", "issue-key", "--home", str(w.authority), "--kind", "host",
             "--group", "server", "--activations", "1", "--json"])  # fmt: skip
    return str(json.loads(out.read_text())["key"])


def make_host(w: World, name: str, lab: Bind9, *dns_args: str, key: str = "good") -> Path:
    """An activated host home named ``name.lab.example`` with DNS publishing set up."""
    home = w.root / name
    _ok(["host", "init", "--home", str(home), "--profile", str(w.profile_path),
         "--fqdn", f"{name}.{ZONE}"])  # fmt: skip
    _ok(["host", "install-key", "--home", str(home), _host_key(w)])
    req, resp = w.root / f"{name}-req.json", w.root / f"{name}-resp.json"
    _ok(["host", "activate", "--home", str(home), "--offline-request", str(req)])
    _ok(["authority", "activate-host", "--home", str(w.authority), "--request", str(req),
         "--out", str(resp)])  # fmt: skip
    _ok(["host", "activate", "--home", str(home), "--offline-response", str(resp)])
    key_file = lab.write_key_file(w.root / f"{name}.key")
    if key == "wrong":
        key_file.write_text(
            key_file.read_text().replace(lab.tsig_secret_b64, "c2VjcmV0IG5vYm9keSBrbm93cw==")
        )
    _ok(["host", "dns", "--home", str(home), "--server", f"127.0.0.1:{lab.port}",
         "--tsig-key-file", str(key_file), "--enable", *dns_args])  # fmt: skip
    return home


class HostProcess:
    """``volact host serve`` in a child process, stopped by its PID."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.log = open(home / "serve.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "volact", "host", "serve", "--home", str(home),
             "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.port = 0
        _wait_for(self._ready, f"host {home.name} to listen")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"host serve exited: {(self.home / 'serve.log').read_text()}")
        try:  # serve.json may be caught half-written
            self.port = int(json.loads((self.home / "serve.json").read_text())["ports"][0])
        except (OSError, ValueError, KeyError, IndexError):
            return False
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.log.close()


@contextlib.contextmanager
def serving(*homes: Path) -> Iterator[list[HostProcess]]:
    procs: list[HostProcess] = []
    try:
        for h in homes:
            procs.append(HostProcess(h))
        yield procs
    finally:
        for p in procs:
            p.stop()


def _targets(lab: Bind9) -> dict[str, tuple[int, int, int]]:
    reply = lab.query(f"{LABEL}.{ZONE}", "SRV")
    return {
        rd.target.to_text(omit_final_dot=True): (rd.priority, rd.weight, rd.port)
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.SRV
        for rd in rrset
    }


def _events(home: Path, kind: str) -> list[str]:
    return [e["message"] for e in admin.events(home, limit=1000)["events"] if e["kind"] == kind]


def _client(w: World, lab: Bind9, name: str, seed: int) -> Activation:
    act = Activation(
        w.profile,
        w.root / "clients" / name,
        sku=SKU,
        nameservers=[HostAddress("127.0.0.1", lab.port)],
        rng=random.Random(seed),
        workstation=name,
        attempt_seconds=10.0,
    )
    return act


def test_clients_find_hosts_through_bind_and_spread_by_weight(world: World, lab_up: Bind9) -> None:
    lab = lab_up
    h1 = make_host(world, "w10", lab, "--weight", "10")
    h2 = make_host(world, "w20", lab, "--weight", "20")
    with serving(h1, h2) as (p1, p2):
        _wait_for(lambda: len(_targets(lab)) == 2, "both SRV records")
        assert _targets(lab) == {
            f"w10.{ZONE}": (0, 10, p1.port),
            f"w20.{ZONE}": (0, 20, p2.port),
        }
        assert len(_events(h1, "dns_publish_ok")) == 1

        n = 150
        served: dict[str, int] = {}
        activated = 0
        for i in range(n):
            act = _client(world, lab, f"spread-{i}", seed=i)
            act.set_domain(ZONE)  # no manual host: DNS only
            act.set_host_caching(False)
            st = act.activate()
            assert st.host is not None, st.last_error
            host = st.host.split(":")[0]
            served[host] = served.get(host, 0) + 1
            activated += st.activated
        print(f"\nspread over {n} clients (weights 10:20): {served}; {activated} activated")
        assert set(served) == {f"w10.{ZONE}", f"w20.{ZONE}"}
        share = served[f"w20.{ZONE}"] / n
        assert 0.55 <= share <= 0.78, served  # 2/3 expected; about 1:2
        # Each host counts its own clients; past the threshold (5) they are activated.
        assert activated >= n - 2 * 4

        # The same through the client CLI: set-domain, then activate via --nameserver.
        for i in range(3):
            c = str(world.root / "clients" / f"cli-{i}")
            _ok(["client", "init", "--home", c, "--profile", str(world.profile_path),
                 "--sku", SKU, "--workstation", f"cli-{i}"])  # fmt: skip
            _ok(["client", "set-domain", "--home", c, ZONE])
            _ok(["client", "activate", "--home", c, "--nameserver", f"127.0.0.1:{lab.port}"])

    assert lab.query(f"w10.{ZONE}", "A").answer  # published from the listen address
    # Unpublish one host (its service stopped): the other's record stays; its own
    # A record goes too, remembered from when it was published.
    _ok(["host", "dns", "unpublish", "--home", str(h1)])
    assert set(_targets(lab)) == {f"w20.{ZONE}"}
    assert not lab.query(f"w10.{ZONE}", "A").answer
    assert lab.query(f"w20.{ZONE}", "A").answer
    assert _events(h1, "dns_unpublish_ok")
    _ok(["host", "dns", "unpublish", "--home", str(h2)])
    assert _targets(lab) == {}


def test_host_serves_while_bind_refuses_its_key(world: World, lab_up: Bind9) -> None:
    home = make_host(world, "badkey", lab_up, key="wrong")
    with serving(home) as (proc,):
        _wait_for(lambda: bool(_events(home, "dns_publish_failed")), "a failure event")
        message = _events(home, "dns_publish_failed")[0]
        assert message.startswith(f"{ZONE}: refused (NOTAUTH/BADSIG)")
        client = _client(world, lab_up, "badkey-client", seed=1)
        client.set_host(f"127.0.0.1:{proc.port}")
        st = client.activate()
        assert st.result in ("ok", "count_too_low"), st.last_error
        assert st.host == f"127.0.0.1:{proc.port}"
    assert f"badkey.{ZONE}" not in _targets(lab_up)
    assert "BADSIG" in json.dumps(admin.status(home, now=int(time.time()))["dns"])


def test_bind_down_at_host_start_then_back(world: World, lab_up: Bind9) -> None:
    lab = lab_up
    home = make_host(world, "outage", lab, "--retry-initial", "1", "--retry-max", "2")
    lab.stop()
    try:
        with serving(home) as (proc,):
            _wait_for(lambda: bool(_events(home, "dns_publish_failed")), "a failure event")
            assert "connection refused" in _events(home, "dns_publish_failed")[0]
            # The host serves all the same.
            client = _client(world, lab, "outage-client", seed=2)
            client.set_host(f"127.0.0.1:{proc.port}")
            st = client.activate()
            assert st.result in ("ok", "count_too_low"), st.last_error

            lab.start()
            _wait_for(lambda: f"outage.{ZONE}" in _targets(lab), "the record after BIND is back")
            assert _targets(lab)[f"outage.{ZONE}"] == (0, 0, proc.port)
            _wait_for(lambda: bool(_events(home, "dns_publish_ok")), "the success event")
    finally:
        lab.start()
    _ok(["host", "dns", "unpublish", "--home", str(home)])
    assert f"outage.{ZONE}" not in _targets(lab)
