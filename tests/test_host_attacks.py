"""Issue 11 items 1 and 2 over real loopback sockets against ``volact host serve``.

Each attack is bounded in connections and time. The slot attack measures the
legitimate client's success while attackers hold every connection slot (before
the fix: closed on accept, about 2 %); the count flood checks the cap path end to
end (a reply, no traceback, no phantom machine, an event and a metric).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
from pathlib import Path

from test_host_server import Host, exchange, request
from volact import wire
from volact.host.config import SERVE_FILE
from volact.host.store import HostStore
from volact.testing.attacks import slot_attack
from volact.testing.hosts import make_host_home
from volact.wire import ActivateReply, Result


def _stderr_of(host: Host) -> str:
    assert host.stop() == 0
    return host.proc.stderr.read() if host.proc.stderr else ""


def test_a_host_whose_slots_are_all_held_keeps_serving_new_clients(tmp_path: Path) -> None:
    # The attack scaled down: 4 addresses (4 networks) x 16 idle connections
    # fill all 64 slots, and each is reopened the moment the host closes it.
    h = tmp_path / "host"
    profile, _, _ = make_host_home(h, max_connections=64, max_connections_per_address=16)
    host = Host(h, ["127.0.0.1:0"])
    try:
        ip, port = host.addr("4")
        frame = wire.encode(request(profile, 1))
        result = asyncio.run(
            slot_attack(ip, port, frame, per_source=16, attempts=40, exchange_timeout=5.0,
                        max_opens=20_000)
        )
    finally:
        err = _stderr_of(host)
    assert result.attacker_connections >= 64  # the attack did take every slot
    assert result.success_rate >= 0.9, result
    assert "Traceback" not in err


def _metrics(home: Path) -> str:
    address = json.loads((home / SERVE_FILE).read_text())["metrics"]
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text: str = resp.read().decode()
    return text


def test_a_count_flood_at_the_cap_is_refused_cleanly(tmp_path: Path) -> None:
    h = tmp_path / "host"
    profile, _, _ = make_host_home(h, max_machines=10)
    host = Host(h, ["127.0.0.1:0"], "--metrics", "127.0.0.1:0")
    try:
        addr = host.addr("4")
        replies = []
        for i in range(14):
            reply = wire.decode(exchange(addr, wire.encode(request(profile, i))))
            assert isinstance(reply, ActivateReply)
            replies.append(reply)
        # A machine already counted still renews at the cap.
        again = wire.decode(exchange(addr, wire.encode(request(profile, 3))))
        metrics = _metrics(h)
    finally:
        err = _stderr_of(host)
    assert [r.result for r in replies] == [Result.COUNT_TOO_LOW] * 10 + [
        Result.COUNT_REFUSED
    ] * 4
    assert all(r.count == 10 for r in replies[10:])
    assert isinstance(again, ActivateReply) and again.result is Result.COUNT_TOO_LOW
    assert 'volact_host_new_machines_refused_total{reason="full"} 4.0' in metrics
    assert "volact_host_count_capacity 10.0" in metrics
    assert "Traceback" not in err
    assert "new to the count refused" in err  # the operator's log says so
    with HostStore.open(h) as store:
        # No phantom: the store knows exactly the ten counted machines.
        known = [store.has_client(request(profile, i).cmid.bytes) for i in range(14)]
        assert known == [True] * 10 + [False] * 4
        floods = [e for e in store.events(limit=1000) if e.kind == "count_flood"]
    # One event a minute at most (two if a minute's summary fell between the requests).
    assert 1 <= len(floods) <= 2
    assert all("because the count is full" in (e.message or "") for e in floods)


def test_an_http_client_on_the_activation_port_is_logged_as_not_volact(tmp_path: Path) -> None:
    h = tmp_path / "host"
    make_host_home(h)
    host = Host(h, ["127.0.0.1:0"])
    try:
        with socket.create_connection(host.addr("4"), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100) == b""  # closed without an answer
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with HostStore.open(h) as store:
                bad = [e for e in store.events(limit=100) if e.kind == "malformed"]
            if bad:
                break
            time.sleep(0.05)
    finally:
        _stderr_of(host)
    assert bad and "that is not a volact client" in (bad[0].message or "")
