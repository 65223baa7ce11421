"""End to end: rebalance and drain with real host processes and a real BIND 9.

Host A serves 60 desktop clients alone; host B is added and publishes itself;
``volact host rebalance --share 50`` on A (picked up by the running A without a
restart); after the clients' next few attempts the half that A's share chose is
licensed by B, no client was ever unlicensed, and A's ``rebalance.remaining``
matches the clients it still licenses. Then ``--share 100`` drains A: it withdraws
its SRV record, every client moves to B, and A says it is empty.

Clients are the embedding API in this process (each ``activate()`` is one attempt
now, through BIND and TCP); A's progress is read with ``now`` two activation
intervals ahead, when a told client that has not come back counts as gone.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import random
import time
from pathlib import Path

import pytest

from services import Bind9
from test_dns_e2e import HostProcess, _targets, _wait_for
from test_dns_e2e import lab as lab  # the same private BIND fixture (module scope)
from volact.cli import main
from volact.client.api import Activation
from volact.client.srv import HostAddress
from volact.documents import ActivationTicket
from volact.host import admin
from volact.host.config import CONFIG_FILE
from volact.host.rebalance import leave_after, selects
from volact.profile import ProductProfile
from volact.wire import DEFAULT_ACTIVATION_INTERVAL

pytestmark = pytest.mark.slow

ZONE = "lab.example"  # test_dns_e2e's _targets() reads this zone
SKU = "Acme Desktop 2026 Professional"  # desktop group: threshold 25
N = 60


def _ok(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0, argv
    return out.getvalue()


def _host(root: Path, authority: Path, profile: Path, name: str, lab: Bind9) -> Path:
    home = root / name
    _ok(["host", "init", "--home", str(home), "--profile", str(profile),
         "--fqdn", f"{name}.{ZONE}"])  # fmt: skip
    issued = _ok(["authority", "issue-key", "--home", str(authority), "--kind", "host",
                  "--group", "desktop", "--activations", "1", "--json"])  # fmt: skip
    key = json.loads(issued)["key"]
    _ok(["host", "install-key", "--home", str(home), key])
    req, resp = root / f"{name}-req.json", root / f"{name}-resp.json"
    _ok(["host", "activate", "--home", str(home), "--offline-request", str(req)])
    _ok(["authority", "activate-host", "--home", str(authority), "--request", str(req),
         "--out", str(resp)])  # fmt: skip
    _ok(["host", "activate", "--home", str(home), "--offline-response", str(resp)])
    key_file = lab.write_key_file(root / f"{name}.key")
    _ok(["host", "dns", "--home", str(home), "--server", f"127.0.0.1:{lab.port}",
         "--tsig-key-file", str(key_file), "--enable"])  # fmt: skip
    return home


def _host_id(home: Path) -> bytes:
    return bytes.fromhex(json.loads((home / CONFIG_FILE).read_text())["host_id"])


def _licensed_by(act: Activation) -> bytes:
    state = act.load()
    assert state.ticket is not None
    return ActivationTicket.decode(state.ticket)[0].host_id


def _round(clients: list[Activation]) -> None:
    """One attempt by every licensed client; none may come out unlicensed (an attempt
    that fails, say on a loaded machine, leaves a licensed client licensed)."""
    for act in clients:
        before = act.status().state
        st = act.activate()
        if before == "licensed":
            assert st.state == "licensed", (st.state, st.last_error)


def _progress(home: Path) -> dict[str, object]:
    # Two activation intervals on, a client told to move that has not come back has left.
    later = int(time.time()) + leave_after(DEFAULT_ACTIVATION_INTERVAL) + 60
    rb = admin.status(home, now=later)["rebalance"]
    assert isinstance(rb, dict)
    return rb


def test_rebalance_half_then_drain_with_real_hosts_and_bind(
    tmp_path: Path, lab: Bind9
) -> None:
    authority, profile_path = tmp_path / "authority", tmp_path / "profile.json"
    _ok(["authority", "init", "--home", str(authority), "--demo-catalog"])
    _ok(["authority", "export-profile", "--home", str(authority), "--out", str(profile_path)])
    profile = ProductProfile.loads(profile_path.read_bytes())
    a_home = _host(tmp_path, authority, profile_path, "hosta", lab)
    b_home = _host(tmp_path, authority, profile_path, "hostb", lab)
    a_id, b_id = _host_id(a_home), _host_id(b_home)

    a = HostProcess(a_home)
    b: HostProcess | None = None
    try:
        _wait_for(lambda: set(_targets(lab)) == {f"hosta.{ZONE}"}, "A's SRV record")
        # CMIDs are random, so a 50 % share would choose Binomial(60, 1/2) of them: fewer
        # than B's threshold of 25 about one run in thirteen, and then no mover may be
        # activated by B (right, but another test). Make homes until exactly N/2 are chosen.
        clients: list[Activation] = []
        picked = {True: 0, False: 0}
        for i in itertools.count():
            act = Activation(
                profile, tmp_path / "clients" / f"pc{i}", sku=SKU, workstation=f"pc{i}",
                nameservers=[HostAddress("127.0.0.1", lab.port)], rng=random.Random(i),
                attempt_seconds=30.0,
            )  # fmt: skip
            sel = selects(act.load().cmid.bytes, a_id, 5000)
            if picked[sel] == N // 2:
                continue
            picked[sel] += 1
            act.set_domain(ZONE)
            clients.append(act)
            if len(clients) == N:
                break
        for act in clients:  # the first 24 hear "count too low" and stay in grace
            act.activate()
        for _ in range(4):  # A counts 60: everyone is licensed by A
            if all(c.status().state == "licensed" for c in clients):
                break
            _round([c for c in clients if c.status().state != "licensed"])
        assert all(_licensed_by(c) == a_id for c in clients)

        b = HostProcess(b_home)
        _wait_for(lambda: set(_targets(lab)) == {f"hosta.{ZONE}", f"hostb.{ZONE}"}, "B's record")

        out = _ok(["host", "rebalance", "--home", str(a_home), "--share", "50", "--json"])
        assert json.loads(out)["rebalance"]["share"] == 50
        _wait_for(
            lambda: any(e["kind"] == "rebalance_set" for e in admin.events(a_home)["events"]),
            "A to pick the setting up",
        )
        chosen = {c.load().cmid for c in clients if selects(c.load().cmid.bytes, a_id, 5000)}
        assert len(chosen) == N // 2
        for _ in range(8):  # renew (told), then move; B counts its way to 25
            _round(clients)
            if {c.load().cmid for c in clients if _licensed_by(c) == b_id} == chosen:
                break
        on_b = {c.load().cmid for c in clients if _licensed_by(c) == b_id}
        assert on_b == chosen  # exactly A's chosen share, about half
        rb = _progress(a_home)
        assert rb["share"] == 50 and rb["told"] == len(chosen)
        assert rb["remaining"] == N - len(chosen) == sum(_licensed_by(c) == a_id for c in clients)
        assert rb["empty"] is False
        moves = [e for e in admin.events(a_home, limit=1000)["events"] if e["kind"] == "move_told"]
        assert len(moves) >= len(chosen)

        # Drain: A withdraws its record at once, and every client leaves.
        out = _ok(["host", "rebalance", "--home", str(a_home), "--share", "100", "--json"])
        drained = json.loads(out)
        assert drained["rebalance"]["draining"] is True
        assert [d["ok"] for d in drained["dns"]] == [True]
        assert set(_targets(lab)) == {f"hostb.{ZONE}"}
        _wait_for(
            lambda: any(
                e["kind"] == "rebalance_set" and e["message"].startswith("drain")
                for e in admin.events(a_home)["events"]
            ),
            "A to pick the drain up",
        )
        for _ in range(6):
            _round(clients)
            if all(_licensed_by(c) == b_id for c in clients):
                break
        assert all(_licensed_by(c) == b_id for c in clients)
        rb = _progress(a_home)
        assert rb["remaining"] == 0 and rb["empty"] is True, rb
        text = _ok(["host", "status", "--home", str(a_home)])
        assert "rebalance:   draining" in text

        # Stop: A publishes itself again; nobody is asked to move any more.
        out = _ok(["host", "rebalance", "--home", str(a_home), "--stop", "--json"])
        assert json.loads(out)["rebalance"] is None
        assert set(_targets(lab)) == {f"hosta.{ZONE}", f"hostb.{ZONE}"}
    finally:
        a.stop()
        if b is not None:
            b.stop()
    for home in (a_home, b_home):
        with contextlib.suppress(Exception):
            main(["host", "dns", "unpublish", "--home", str(home)])
