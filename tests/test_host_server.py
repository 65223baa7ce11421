"""The host over real sockets (127.0.0.1 and ::1): exchanges, hostile clients, crashes.

Each test runs ``volact host serve`` as a real process on port 0 and reads the
bound ports from ``serve.json``. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from volact import wire
from volact.documents import verify_chain
from volact.errors import ConfigurationError, StoreError
from volact.host.activation import load_core
from volact.host.config import SERVE_FILE, HostConfig, parse_listen
from volact.host.policy import COUNT_WINDOW, RequestRecord
from volact.host.server import HostProtocol, HostServer
from volact.host.store import HostStore
from volact.profile import ProductProfile
from volact.testing.hosts import make_host_home
from volact.wire import ActivateReply, ActivateRequest, LicenseState, Result

VOLACT = [sys.executable, "-m", "volact"]
HAS_IPV6 = socket.has_ipv6


class Host:
    """A ``volact host serve`` process and its home."""

    def __init__(self, home: Path, listen: list[str], *extra: str) -> None:
        self.home = home
        args = [*VOLACT, "host", "serve", "--home", str(home), *extra]
        for a in listen:
            args += ["--listen", a]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.line = _readline(self.proc, 20.0)
        if "listening on" not in self.line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.proc.kill()
            raise AssertionError(f"host did not start: {self.line!r} {err}")
        info = json.loads((home / SERVE_FILE).read_text())
        self.addresses: list[str] = info["addresses"]

    def addr(self, family: str = "4") -> tuple[str, int]:
        for a in self.addresses:
            host, port = a.rsplit(":", 1)
            if (family == "6") == host.startswith("["):
                return host.strip("[]"), int(port)
        raise AssertionError(f"no IPv{family} address in {self.addresses}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def _wall_clock() -> int:
    return int(time.time())


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(proc.stdout.readline() if proc.stdout else ""))
    t.daemon = True
    t.start()
    t.join(timeout)
    return out[0] if out else ""


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, ProductProfile]:
    h = tmp_path / "host"
    profile, _, _ = make_host_home(h, read_timeout=1.0)
    return h, profile


@pytest.fixture
def host(home: tuple[Path, ProductProfile]) -> Iterator[Host]:
    listen = ["127.0.0.1:0"] + (["[::1]:0"] if HAS_IPV6 else [])
    h = Host(home[0], listen)
    yield h
    h.stop()


def request(profile: ProductProfile, i: int, *, group: str = "desktop") -> ActivateRequest:
    sku = next(s for s in profile.catalog.skus if s.group == group)
    return ActivateRequest(
        sku.id,
        uuid.UUID(int=(7 << 64) | i),
        os.urandom(16),
        int(time.time()),
        LicenseState.GRACE,
        1000,
        False,
        f"pc-{i}",
    )


def exchange(addr: tuple[str, int], frame: bytes, timeout: float = 5.0) -> bytes:
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(addr)
        s.sendall(frame)
        return _read_all(s)


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    for _ in range(1000):
        try:
            b = s.recv(4096)
        except ConnectionResetError:
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def activate(addr: tuple[str, int], req: ActivateRequest) -> ActivateReply:
    reply = wire.decode(exchange(addr, wire.encode(req)))
    assert isinstance(reply, ActivateReply)
    return reply


def test_activation_over_ipv4_and_ipv6(host: Host, home: tuple[Path, ProductProfile]) -> None:
    _, profile = home
    families = ["4", "6"] if HAS_IPV6 else ["4"]
    replies = [
        activate(host.addr(families[i % len(families)]), request(profile, i)) for i in range(25)
    ]
    assert [r.result for r in replies[:24]] == [Result.COUNT_TOO_LOW] * 24
    assert replies[24].result is Result.OK and replies[24].count == 25
    lic = wire.decode(exchange(host.addr(families[-1]), wire.encode(wire.GetLicense())))
    assert isinstance(lic, wire.LicenseReply)
    req = request(profile, 3)
    r = activate(host.addr(), req)
    assert r.ticket is not None
    verify_chain(
        profile.vendor_public_key,
        profile.catalog,
        lic.host_license,
        r.ticket,
        cmid=req.cmid,
        nonce=req.nonce,
        now=int(time.time()),
    )
    host.stop()
    with HostStore.open(host.home) as store:
        assert store.has_client(req.cmid.bytes)
        totals = store.result_totals()
    assert totals == {"count_too_low": 24, "ok": 2}


def test_clock_offset_moves_the_hosts_time(home: tuple[Path, ProductProfile]) -> None:
    week = 7 * 86400
    h = Host(home[0], ["127.0.0.1:0"], "--clock-offset", str(week))
    try:
        now = request(home[1], 1, group="server")
        assert activate(h.addr(), now).result is Result.CLOCK_SKEW
        later = dataclasses.replace(now, client_time=now.client_time + week)
        assert activate(h.addr(), later).result is Result.COUNT_TOO_LOW
    finally:
        assert h.stop() == 0


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 on this machine")
def test_an_ipv6_only_host(home: tuple[Path, ProductProfile]) -> None:
    h = Host(home[0], ["[::1]:0"])
    try:
        assert all(a.startswith("[::1]:") for a in h.addresses)
        r = activate(h.addr("6"), request(home[1], 1, group="server"))
        assert r.result is Result.COUNT_TOO_LOW and r.count == 1
    finally:
        assert h.stop() == 0


def test_hostile_clients_are_closed_and_others_are_served(
    host: Host, home: tuple[Path, ProductProfile]
) -> None:
    _, profile = home
    addr = host.addr()
    good = wire.encode(request(profile, 1))
    # Garbage with a plausible length: closed without a reply.
    assert exchange(addr, b"\x00\x10" + b"\xee" * 16) == b""
    # Oversized: a length beyond the largest request is refused on sight.
    assert exchange(addr, b"\xff\xff" + b"A" * 300) == b""
    # Trailing data after a whole frame.
    assert exchange(addr, good + b"extra") == b""
    # Truncated: half a frame, then the client stops sending.
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(good[:20])
        s.shutdown(socket.SHUT_WR)
        assert _read_all(s) == b""
    # A request fed one byte at a time (quickly) is a request.
    with socket.create_connection(addr, timeout=5) as s:
        for b in good:
            s.sendall(bytes([b]))
        assert isinstance(wire.decode(_read_all(s)), ActivateReply)

    # Slow (byte-a-second) clients hold their connection only until the read
    # timeout (1 s here), and meanwhile others are answered.
    slow_results: list[bytes] = []

    def slow() -> None:
        with socket.create_connection(addr, timeout=10) as s:
            try:
                for b in good:
                    s.sendall(bytes([b]))
                    time.sleep(0.25)
            except OSError:
                pass
            slow_results.append(_read_all(s))

    threads = [threading.Thread(target=slow) for _ in range(3)]
    for t in threads:
        t.start()
    served = [activate(addr, request(profile, 100 + i)).result for i in range(10)]
    for t in threads:
        t.join(20)
    assert served == [Result.COUNT_TOO_LOW] * 10
    assert slow_results == [b"", b"", b""]
    assert activate(addr, request(profile, 200)).result is Result.COUNT_TOO_LOW
    host.stop()
    with HostStore.open(host.home) as store:
        events = [e for e in store.events(limit=1000) if e.kind == "malformed"]
        totals = store.result_totals()
    # 4 malformed and 3 timed-out connections, all from 127.0.0.1 within a minute:
    # counted one by one, logged as one event at once and one summary (at stop).
    assert totals["malformed"] == 7
    assert len(events) == 2 and {e.address for e in events} == {"127.0.0.1"}
    assert sum(_connections(e.message) for e in events) == 7


def _connections(message: str | None) -> int:
    """How many connections a ``malformed`` event stands for (its message starts with it)."""
    assert message is not None
    return int(message.split()[0])


def test_a_full_host_closes_the_oldest_idle_connection_for_a_newcomer(tmp_path: Path) -> None:
    # Issue 11.1: idle connections used to keep every newcomer out until they timed
    # out. Refusal when every slot is busy with a request: tests/test_host_admission.py.
    h_home = tmp_path / "host"
    profile, _, _ = make_host_home(h_home, max_connections=2, read_timeout=30.0)
    h = Host(h_home, ["127.0.0.1:0"])
    try:
        addr = h.addr()
        idle = [socket.create_connection(addr, timeout=5) for _ in range(2)]
        time.sleep(0.2)  # let the host accept them (no assertion on time)
        # The newcomer comes from another /24 (any 127.x.y.z is local): a newcomer
        # from the idle connections' own network would only trade places with them.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.bind(("127.0.1.1", 0))
            s.connect(addr)
            s.sendall(wire.encode(request(profile, 1)))
            reply = wire.decode(_read_all(s))
        assert isinstance(reply, ActivateReply) and reply.result is Result.COUNT_TOO_LOW
        assert _read_all(idle[0]) == b""  # the oldest idle one made room
        idle[1].settimeout(0.3)
        with pytest.raises(TimeoutError):  # the other is still open
            idle[1].recv(1)
        for s in idle:
            s.close()
    finally:
        h.stop()


def test_a_second_host_on_the_same_home_is_refused(host: Host) -> None:
    out = subprocess.run(
        [*VOLACT, "host", "serve", "--home", str(host.home), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert "in use by another running host" in out.stderr


def test_sigterm_finishes_and_flushes(host: Host, home: tuple[Path, ProductProfile]) -> None:
    _, profile = home
    for i in range(5):
        activate(host.addr(), request(profile, i, group="server"))
    assert host.stop() == 0
    assert not (host.home / SERVE_FILE).exists()
    with HostStore.open(host.home) as store:
        kinds = [e.kind for e in store.events(limit=100)]
        assert sum(1 for i in range(5) if store.has_client(request(profile, i).cmid.bytes)) == 5
    assert kinds[-1] == "serve_stop" and kinds.count("request") == 5


async def _load(
    addr: tuple[str, int],
    frames: list[tuple[uuid.UUID, bytes]],
    granted: list[uuid.UUID],
    stop_at: float,
) -> None:
    queue = list(reversed(frames))

    async def worker() -> None:
        while queue and time.monotonic() < stop_at:
            cmid, frame = queue.pop()
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(*addr), 2)
                w.write(frame)
                data = await asyncio.wait_for(r.read(), 2)
                w.close()
            except (TimeoutError, OSError):
                continue
            try:
                reply = wire.decode(data)
            except Exception:
                continue
            if isinstance(reply, ActivateReply) and reply.result is Result.OK:
                granted.append(cmid)

    await asyncio.gather(*(worker() for _ in range(16)))


def test_sigkill_during_load_loses_no_granted_activation(
    host: Host, home: tuple[Path, ProductProfile]
) -> None:
    _, profile = home
    frames = []
    for i in range(20_000):
        req = request(profile, i, group="server")
        frames.append((req.cmid, wire.encode(req)))
    granted: list[uuid.UUID] = []
    addr = host.addr()

    def killer() -> None:
        time.sleep(1.5)
        host.proc.send_signal(signal.SIGKILL)

    t = threading.Thread(target=killer)
    t.start()
    asyncio.run(_load(addr, frames, granted, time.monotonic() + 20))
    t.join()
    host.proc.wait(10)
    assert host.proc.returncode == -signal.SIGKILL
    assert len(granted) > 50, "the load did not get going before the kill"
    with HostStore.open(host.home) as store:
        missing = [c for c in granted if not store.has_client(c.bytes)]
        valid = store.validity_summary(now=0, warn=0, counted_since=0).licensed
    assert missing == []
    assert valid >= len(granted)
    # And the host comes back on the same home (the lock died with it).
    again = Host(host.home, ["127.0.0.1:0"])
    try:
        r = activate(again.addr(), request(profile, 1, group="server"))
        assert r.result is Result.OK and r.count >= len(granted)
    finally:
        assert again.stop() == 0


def test_a_corrupt_store_is_a_clear_error(tmp_path: Path) -> None:
    h = tmp_path / "host"
    make_host_home(h)
    for f in h.glob("store.sqlite*"):
        f.unlink()
    (h / "store.sqlite").write_bytes(b"this is not a database" * 100)
    out = subprocess.run(
        [*VOLACT, "host", "serve", "--home", str(h), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1 and "corrupt" in out.stderr


def test_a_client_that_half_closes_gets_its_grant(
    host: Host, home: tuple[Path, ProductProfile]
) -> None:
    # shutdown(SHUT_WR) after the request: the grant, which waits for the group
    # commit, must still reach the client (the refusals are answered at once).
    _, profile = home
    replies = []
    for i in range(5):
        with socket.create_connection(host.addr(), timeout=5) as s:
            s.sendall(wire.encode(request(profile, i, group="server")))
            s.shutdown(socket.SHUT_WR)
            reply = wire.decode(_read_all(s))
        assert isinstance(reply, ActivateReply)
        replies.append(reply)
    assert [r.result for r in replies] == [Result.COUNT_TOO_LOW] * 4 + [Result.OK]
    assert replies[4].ticket is not None


# -- in process: the server object around a real store, driven by hand ---------


class _Conn:
    """Stands in for a :class:`HostProtocol`: what the server sends to one client."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.bad: list[str] = []

    def peer(self) -> str:
        return "192.0.2.7"

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)

    def _bad(self, message: str) -> None:
        self.bad.append(message)


class _FlakyStore:
    """A real store that fails on demand, with an error that is not a StoreError."""

    def __init__(self, store: HostStore) -> None:
        self.store = store
        self.fail = False

    def write_batch(self, *args: object, **kwargs: object) -> None:
        if self.fail:
            raise RuntimeError("the disk caught fire")
        self.store.write_batch(*args, **kwargs)  # type: ignore[arg-type]


def test_a_failed_commit_answers_busy_and_the_count_stays_what_the_store_has(
    tmp_path: Path,
) -> None:
    h = tmp_path / "host"
    profile, _, cfg = make_host_home(h)
    loop = asyncio.new_event_loop()
    with HostStore.open(h) as store:
        flaky = _FlakyStore(store)
        core = load_core(h, cfg, [], now=int(time.time()))
        server = HostServer(h, core, flaky, cfg, loop, _wall_clock)  # type: ignore[arg-type]

        def ask(i: int, group: str = "server") -> ActivateReply:
            conn = _Conn()
            server.exchange(conn, wire.encode(request(profile, i, group=group)))  # type: ignore[arg-type]
            server.committer.flush()
            assert len(conn.sent) == 1, "every client gets exactly one answer"
            reply = wire.decode(conn.sent[0])
            assert isinstance(reply, ActivateReply)
            return reply

        def stored(now: int) -> int:
            return store.count_since(now - COUNT_WINDOW, count_vms=True)[0]

        try:
            assert [ask(i).result for i in range(4)] == [Result.COUNT_TOO_LOW] * 4
            flaky.fail = True
            busy = ask(4)  # the fifth server would be granted: its commit fails
            assert busy.result is Result.BUSY and busy.ticket is None
            # A refusal is sent at once; its record is lost with the batch.
            assert ask(5, "desktop").result is Result.COUNT_TOO_LOW
            now = server.now()
            assert core.count(now) == stored(now) == 4
            assert server.committer.failures == 2
            flaky.fail = False
            granted = ask(4)
            assert granted.result is Result.OK and granted.count == 5
            assert core.count(now) == stored(now) == 5
        finally:
            loop.close()


def test_store_errors_become_store_error_and_a_failed_batch_is_rolled_back(
    tmp_path: Path,
) -> None:
    h = tmp_path / "host"
    make_host_home(h)
    t = int(time.time())
    good = RequestRecord(t, "192.0.2.1", b"g" * 16, b"s" * 16, "pc", False, 1, 10, t, 1, 1, 0)
    bad = good._replace(cmid=b"b" * 16, minutes_left=2**70)  # too big for SQLite
    with HostStore.open(h) as store:
        with pytest.raises(OverflowError):
            store.write_batch([good, bad])
        # The half-written batch was rolled back and the store is still usable.
        assert not store.has_client(good.cmid)
        store.write_batch([good], malformed=[(t, "192.0.2.9", "1 connection: x")],
                          malformed_count=5)  # fmt: skip
        assert store.has_client(good.cmid)
        assert store.result_totals() == {"count_too_low": 1, "malformed": 5}
    store = HostStore.open(h)
    store.close()
    with pytest.raises(StoreError):  # sqlite3.ProgrammingError: a closed database
        store.write_batch([good])


@pytest.mark.parametrize("cap, refused", [(2, 1), (0, 0)])
def test_one_address_cannot_take_every_connection_slot(
    tmp_path: Path, cap: int, refused: int
) -> None:
    h = tmp_path / "host"
    profile, _, cfg = make_host_home(h, max_connections_per_address=cap)
    frame = wire.encode(request(profile, 1))

    async def read(r: asyncio.StreamReader) -> bytes:
        try:
            return await asyncio.wait_for(r.read(), 5)
        except ConnectionResetError:
            return b""

    async def settle(done: Callable[[], bool]) -> None:
        for _ in range(250):
            if done():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the server did not get there")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with HostStore.open(h) as store:
            core = load_core(h, cfg, [], now=int(time.time()))
            server = HostServer(h, core, store, cfg, loop, _wall_clock)
            await server.start(["127.0.0.1:0"] + (["[::1]:0"] if HAS_IPV6 else []))
            v4 = next(a for a in server.addresses if not a.startswith("["))
            v4_addr = (v4.rsplit(":", 1)[0], int(v4.rsplit(":", 1)[1]))
            try:
                idle = [await asyncio.open_connection(*v4_addr) for _ in range(2)]
                await settle(lambda: server.stats.active == 2)
                r, w = await asyncio.open_connection(*v4_addr)
                w.write(frame)
                data = await read(r)
                w.close()
                assert server.stats.refused_busy == refused
                assert (data == b"") == bool(refused)
                if HAS_IPV6:  # another address is served meanwhile
                    v6 = next(a for a in server.addresses if a.startswith("["))
                    r6, w6 = await asyncio.open_connection("::1", int(v6.rsplit(":", 1)[1]))
                    w6.write(frame)
                    assert isinstance(wire.decode(await read(r6)), ActivateReply)
                    w6.close()
                for _, w in idle:
                    w.close()
                await settle(lambda: server.stats.active == 0 and not len(server.slots))
                r, w = await asyncio.open_connection(*v4_addr)
                w.write(frame)
                assert isinstance(wire.decode(await read(r)), ActivateReply)
                w.close()
            finally:
                await server.stop(grace=1.0)

    asyncio.run(main())


class _Transport:
    """Just enough of an asyncio transport for the sweeper."""

    def __init__(self) -> None:
        self.aborted = False

    def get_extra_info(self, name: str) -> object:
        return ("192.0.2.5", 40000) if name == "peername" else None

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def test_the_sweeper_bounds_slow_requests_and_stuck_replies(tmp_path: Path) -> None:
    h = tmp_path / "host"
    _, _, cfg = make_host_home(h, read_timeout=5.0)
    loop = asyncio.new_event_loop()
    with HostStore.open(h) as store:
        core = load_core(h, cfg, [], now=int(time.time()))
        server = HostServer(h, core, store, cfg, loop, _wall_clock)
        try:
            slow, waiting = HostProtocol(server), HostProtocol(server)
            transports = [_Transport(), _Transport()]
            for conn, t in zip((slow, waiting), transports, strict=True):
                conn.connection_made(t)  # type: ignore[arg-type]
            # A whole request arrived, then a half-close: the reply is awaited.
            waiting._done = True
            assert waiting.eof_received() is True and not transports[1].aborted
            start = slow._started
            server.sweep_once(start + 5.5)  # one read timeout: the slow request goes
            assert transports[0].aborted and not transports[1].aborted
            assert server.stats.timeouts == 1
            server.sweep_once(start + 10.5)  # two: a reply this late is given up
            assert transports[1].aborted
        finally:
            server.committer.close()
            loop.close()


def test_listen_on_a_bare_port_means_every_interface_and_both_families(tmp_path: Path) -> None:
    assert parse_listen(":1688", 1) == ("", 1688)
    assert parse_listen("[::1]:7", 1) == ("::1", 7)
    assert parse_listen("127.0.0.1", 9) == ("127.0.0.1", 9)
    h = tmp_path / "host"
    _, _, cfg = make_host_home(h, port=1234)
    bound: list[tuple[str | None, int]] = []

    class Loop:  # records what start() asks for, without binding anything
        async def create_server(self, _f: object, host: str | None, port: int, **_: object):  # type: ignore[no-untyped-def]
            bound.append((host, port))
            return type("S", (), {"sockets": [], "close": lambda self: None})()

    with HostStore.open(h) as store:
        core = load_core(h, cfg, [], now=int(time.time()))
        server = HostServer(h, core, store, cfg, Loop(), _wall_clock)  # type: ignore[arg-type]
        asyncio.run(server.start([":1688", "", "*:5", "127.0.0.1:0"]))
    # None: asyncio binds 0.0.0.0 and :: (as with no listen address at all).
    assert bound == [(None, 1688), (None, 1234), (None, 5), ("127.0.0.1", 0)]


def test_count_vms_must_be_a_json_boolean() -> None:
    base = HostConfig(host_id=bytes(8)).to_json()
    assert HostConfig.from_json({**base, "count_vms": False}).count_vms is False
    for wrong in ("no", "false", 0, 1, None):
        with pytest.raises(ConfigurationError, match="count_vms must be true or false"):
            HostConfig.from_json({**base, "count_vms": wrong})


def test_the_per_address_cap_is_a_setting() -> None:
    cfg = HostConfig(host_id=bytes(8))
    assert cfg.max_connections_per_address == 256
    again = HostConfig.from_json({**cfg.to_json(), "max_connections_per_address": 0})
    assert again.max_connections_per_address == 0
    with pytest.raises(ConfigurationError, match="max_connections_per_address"):
        HostConfig(host_id=bytes(8), max_connections_per_address=-1)


def test_an_already_expired_host_license_is_not_installed(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"expired .* ago"):
        make_host_home(tmp_path / "host", expires_at=int(time.time()) - 30)
    assert not (tmp_path / "host" / "host-license.bin").exists()
