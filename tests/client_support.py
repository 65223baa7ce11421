"""Helpers for the client tests: a vendor and profile, a hand-moved clock, and an
in-memory network that wires clients to :class:`volact.host.policy.HostCore` objects
(no sockets)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from volact.catalog import demo_catalog
from volact.client.api import Activation
from volact.client.planner import run_sync
from volact.client.srv import HostAddress, SrvRecord
from volact.client.state import ClientState, apply_outcome, plan_attempt
from volact.errors import TransportError
from volact.host.policy import HostCore
from volact.keys import ProductKey
from volact.profile import ProductProfile
from volact.signing import SigningKey
from volact.testing.hosts import make_test_host

T0 = 1_800_000_000  # a fixed "now" (2027-01-15) so that tests do not depend on the date
DAY = 86_400
VENDOR = SigningKey.from_seed(bytes([7]) * 32)
CATALOG = demo_catalog()
DESKTOP = CATALOG.sku("Acme Desktop 2026 Professional")  # group threshold 25
SERVER = CATALOG.sku("Acme Server 2026 Standard")  # group threshold 5


def make_profile(vendor: SigningKey = VENDOR, **kw: Any) -> ProductProfile:
    gvlks = {s.id: ProductKey.derive_gvlk(vendor.public_key, s.id.bytes).text for s in CATALOG.skus}
    return ProductProfile("Acme", vendor.public_key, CATALOG, gvlks, **kw)


PROFILE = make_profile()


@dataclass
class Clock:
    """Wall clock moved by hand."""

    t: float = T0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Network:
    """Hosts and SRV records in memory; exchanges call ``HostCore.handle_frame``."""

    clock: Clock
    hosts: dict[HostAddress, Any] = field(default_factory=dict)
    srv: dict[str, list[SrvRecord]] = field(default_factory=dict)
    down: set[HostAddress] = field(default_factory=set)
    log: list[tuple[str, str]] = field(default_factory=list)

    def add_host(self, name: str, core: Any = None, port: int = 1688) -> HostAddress:
        addr = HostAddress(name, port)
        self.hosts[addr] = core if core is not None else make_test_host(VENDOR, CATALOG)
        return addr

    def core(self, addr: HostAddress) -> HostCore:
        core = self.hosts[addr]
        assert isinstance(core, HostCore)
        return core

    def exchange(self, address: HostAddress, frame: bytes, timeout: float) -> bytes:
        self.log.append(("exchange", str(address)))
        host = self.hosts.get(address)
        if host is None or address in self.down:
            raise TransportError(f"{address} did not answer (connection refused)")
        if callable(host) and not isinstance(host, HostCore):
            return bytes(host(frame))
        return host.handle_frame(frame, now=int(self.clock()), address="192.0.2.1")

    def lookup(self, name: str, timeout: float) -> Sequence[SrvRecord]:
        self.log.append(("srv", name))
        return list(self.srv.get(name, []))

    async def exchange_async(self, address: HostAddress, frame: bytes, timeout: float) -> bytes:
        return self.exchange(address, frame, timeout)

    async def lookup_async(self, name: str, timeout: float) -> Sequence[SrvRecord]:
        return self.lookup(name, timeout)

    def activation(
        self,
        home: Path,
        *,
        sku: str | None = DESKTOP.name,
        profile: ProductProfile = PROFILE,
        seed: int = 1,
        search_domains: Sequence[str] = (),
        **kw: Any,
    ) -> Activation:
        return Activation(
            profile,
            home,
            sku=sku,
            clock=self.clock,
            monotonic=lambda: 0.0,
            rng=random.Random(seed),
            lookup_srv=self.lookup,
            exchange=self.exchange,
            lookup_srv_async=self.lookup_async,
            exchange_async=self.exchange_async,
            search_domains=lambda: list(search_domains),
            vm=True,
            workstation=f"ws-{home.name}",
            **kw,
        )


def attempt(
    state: ClientState,
    exchange: Callable[[HostAddress, bytes, float], bytes],
    now: int,
    *,
    profile: ProductProfile = PROFILE,
    seed: int = 1,
) -> ClientState:
    """One activation attempt of ``state`` at ``now``, in memory: the sans-I/O state,
    planner and driver, with ``exchange`` as the network; the state afterwards."""
    planner = plan_attempt(
        state, profile, now=now, nonce=random.Random(now ^ seed).randbytes(16),
        search_domains=(), rng=random.Random(seed), started=0.0,
    )  # fmt: skip
    outcome = run_sync(planner, lookup_srv=lambda n, t: [], exchange=exchange,
                       monotonic=lambda: 0.0)  # fmt: skip
    return apply_outcome(state, outcome, now)


def host_exchange(core: HostCore, now: int) -> Callable[[HostAddress, bytes, float], bytes]:
    """An exchange that hands every frame to ``core`` at ``now``."""
    return lambda address, frame, timeout: core.handle_frame(frame, now=now, address="192.0.2.1")


def fill(core: HostCore, n: int, now: int) -> None:
    """Make ``core`` count ``n`` extra machines (other CMIDs seen at ``now``)."""
    for i in range(n):
        core.index.touch(bytes([0xEE, i % 256, i // 256]) + bytes(13), now, True)


# ---- a real host process -----------------------------------------------------------


class RealHost:
    """``volact host init/install-key/activate/serve`` in a temporary home, listening on
    loopback; activated with a host license that the test vendor signs itself."""

    def __init__(self, home: Path, profile_path: Path, port: int, *, ipv6: bool = False) -> None:
        import os
        import subprocess
        import sys
        import time

        from volact.cli import main
        from volact.documents import HostLicense
        from volact.exchanges import HostActivationRequest, HostActivationResponse, dumps
        from volact.keys import KeyKind

        self.home, self.port = home, port
        key = ProductKey.generate(KeyKind.HOST, os.urandom(12))
        assert main(["host", "init", "--home", str(home), "--profile", str(profile_path),
                     "--port", str(port), "--fqdn", "localhost"]) == 0  # fmt: skip
        assert main(["host", "install-key", "--home", str(home), key.text]) == 0
        req_path = home / "req.json"
        assert main(["host", "activate", "--home", str(home), "--offline-request",
                     str(req_path)]) == 0  # fmt: skip
        req = HostActivationRequest.from_json(req_path.read_text())
        lic = HostLicense(
            VENDOR.key_id, req.host_id, req.host_public_key, key.serial, ("server", "desktop"),
            int(time.time()) - 60,
        ).sign(VENDOR)  # fmt: skip
        resp_path = home / "resp.json"
        resp_path.write_text(dumps(HostActivationResponse(lic)))
        assert main(["host", "activate", "--home", str(home), "--offline-response",
                     str(resp_path)]) == 0  # fmt: skip
        listen = ["--listen", f"127.0.0.1:{port}"]
        if ipv6:
            listen += ["--listen", f"[::1]:{port}"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "volact", "host", "serve", "--home", str(home), *listen],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 20
        seen = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            seen += line
            if b"listening" in line:
                return
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"the host did not start: {seen.decode(errors='replace')}")

    def stop(self) -> None:
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
