"""`volact client` commands: in-process through ``main(argv)``, and against a real
``volact host serve`` over loopback sockets (IPv4 and IPv6), with failover through a
real BIND 9."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from client_support import PROFILE, SERVER, VENDOR, RealHost, make_profile
from services import free_port, ipv6_loopback_available
from volact.cli import main
from volact.documents import MakConfirmation, installation_id
from volact.exchanges import MakRequest, MakResponse, dumps
from volact.keys import KeyKind, ProductKey
from volact.signing import SigningKey

STATUS_FIELDS = {
    "state", "activated", "sku", "cmid", "host", "count", "required_count", "result",
    "valid_until", "grace_until", "next_action_at",
}  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    code, out, err = run(capsys, *argv, "--json")
    return code, json.loads(out), err


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    p = tmp_path / "profile.json"
    p.write_text(PROFILE.dumps())
    return p


def init(capsys: pytest.CaptureFixture[str], home: Path, profile: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    code, obj, err = run_json(
        capsys, "client", "init", "--home", str(home), "--profile", str(profile), "--vm", "yes",
        *extra,
    )  # fmt: skip
    assert code == 0, err
    return obj


def test_init_and_status_json(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                              profile_file: Path) -> None:  # fmt: skip
    home = tmp_path / "c"
    obj = init(capsys, home, profile_file, "--sku", SERVER.name)
    assert obj.keys() >= STATUS_FIELDS
    code, st, _ = run_json(capsys, "client", "status", "--home", str(home))
    assert code == 0
    assert st["state"] == "grace" and st["activated"] is False and st["sku"] == str(SERVER.id)
    assert st["host"] is None and st["result"] is None and st["valid_until"] is None
    assert st["grace_until"].endswith("Z") and st["next_action_at"] is not None
    assert st["cmid"] == obj["cmid"] and st["key"].startswith("XXXXX-")
    code, out, _ = run(capsys, "client", "status", "--home", str(home))
    assert "state:" in out and "grace" in out
    # Init twice is refused; --force starts again with a new CMID.
    code, _, err = run(capsys, "client", "init", "--home", str(home), "--profile",
                       str(profile_file))  # fmt: skip
    assert code == 2 and "--force" in err
    again = init(capsys, home, profile_file, "--force")
    assert again["cmid"] != obj["cmid"] and again["state"] == "unlicensed"


def test_install_key_refuses_mistyped_and_wrong_kind(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, profile_file: Path
) -> None:
    home = tmp_path / "c"
    init(capsys, home, profile_file)
    gvlk = PROFILE.gvlks[SERVER.id]
    typo = ("Z" if gvlk[3] != "Z" else "Y").join([gvlk[:3], gvlk[4:]])
    code, _, err = run(capsys, "client", "install-key", "--home", str(home), typo)
    assert code == 2 and "mistyped" in err and "character 4" in err
    code, _, err = run(capsys, "client", "install-key", "--home", str(home), "0" * 25)
    assert code == 2 and "mistyped" in err
    host_key = ProductKey.generate(KeyKind.HOST, bytes(12)).text
    code, _, err = run(capsys, "client", "install-key", "--home", str(home), host_key)
    assert code == 2 and "host key" in err
    mak = ProductKey.generate(KeyKind.MAK, bytes(range(12))).text
    code, _, err = run(capsys, "client", "install-key", "--home", str(home), mak)
    assert code == 2 and "--sku" in err
    code, st, _ = run_json(capsys, "client", "install-key", "--home", str(home), gvlk)
    assert code == 0 and st["state"] == "grace" and st["key_kind"] == "gvlk"
    assert st["sku"] == str(SERVER.id)


def test_settings_and_rearm(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                            profile_file: Path) -> None:  # fmt: skip
    home = str(tmp_path / "c")
    first = init(capsys, Path(home), profile_file, "--sku", SERVER.name)
    _, st, _ = run_json(capsys, "client", "set-host", "--home", home, "[::1]:9999")
    assert st["manual_host"] == "[::1]:9999"
    _, st, _ = run_json(capsys, "client", "clear-host", "--home", home)
    assert st["manual_host"] is None
    _, st, _ = run_json(capsys, "client", "set-domain", "--home", home, "corp.example.")
    assert st["domain"] == "corp.example"
    _, st, _ = run_json(capsys, "client", "host-caching", "--home", home, "off")
    assert st["host_caching"] is False
    code, _, err = run(capsys, "client", "set-host", "--home", home, "[::1")
    assert code == 2 and "unclosed" in err
    _, st, _ = run_json(capsys, "client", "rearm", "--home", home)
    assert st["cmid"] != first["cmid"] and st["state"] == "grace"
    _, ev, _ = run_json(capsys, "client", "events", "--home", home)
    kinds = [e["event"] for e in ev["events"]]
    assert kinds[0] == "initialised" and "rearmed" in kinds and "host_set" in kinds


def test_activate_with_no_host_answering_exits_non_zero(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, profile_file: Path
) -> None:
    home = str(tmp_path / "c")
    init(capsys, Path(home), profile_file, "--sku", SERVER.name)
    run(capsys, "client", "set-host", "--home", home, f"127.0.0.1:{free_port()}")
    code, st, err = run_json(capsys, "client", "activate", "--home", home)
    assert code == 75 and "did not answer" in err  # still in grace: EXIT_GRACE
    assert st["state"] == "grace" and st["activated"] is False
    assert "did not answer" in st["last_error"]
    code, _, err = run(capsys, "client", "activate", "--home", str(tmp_path / "none"))
    assert code == 1 and "client init" in err


# ---- MAK, offline ------------------------------------------------------------------


def test_mak_offline_request_and_apply(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       profile_file: Path) -> None:  # fmt: skip
    home = str(tmp_path / "c")
    init(capsys, Path(home), profile_file)
    mak = ProductKey.generate(KeyKind.MAK, bytes(range(12)))
    code, st, _ = run_json(capsys, "client", "install-key", "--home", home, mak.text,
                           "--sku", SERVER.name)  # fmt: skip
    assert code == 0 and st["key_kind"] == "mak"
    req_path = tmp_path / "req.json"
    assert run(capsys, "client", "mak-request", "--home", home, "--out", str(req_path))[0] == 0
    req = MakRequest.from_json(req_path.read_text())
    assert req.installation_id == installation_id(req.cmid, SERVER.id)
    # A confirmation signed by another vendor is refused, and nothing changes.
    rogue = SigningKey.from_seed(bytes([5]) * 32)
    for signer, expect in ((rogue, 1), (VENDOR, 0)):
        conf = MakConfirmation(signer.key_id, mak.serial, req.cmid, req.sku,
                               req.installation_id, 1_800_000_000).sign(signer)  # fmt: skip
        resp = tmp_path / "resp.json"
        resp.write_text(dumps(MakResponse(req.cmid, conf)))
        code, out, err = run(capsys, "client", "mak-apply", "--home", home, str(resp), "--json")
        assert code == expect, err
        if expect:
            assert "vendor key" in err
            _, st, _ = run_json(capsys, "client", "status", "--home", home)
            assert st["state"] == "grace"
    st = json.loads(out)
    assert st["state"] == "licensed" and st["permanent"] is True and st["valid_until"] is None
    # A refusal file from the authority is reported.
    refused = tmp_path / "refused.json"
    refused.write_text(dumps(MakResponse(req.cmid, None, "exhausted_key", "no activations left")))
    code, _, err = run(capsys, "client", "mak-apply", "--home", home, str(refused))
    assert code == 1 and "no activations left" in err


def test_mak_online_through_the_http_adapter(tmp_path: Path) -> None:
    import httpx

    from volact.client import mak as mak_mod
    from volact.client.api import Activation

    key = ProductKey.generate(KeyKind.MAK, bytes(range(12)))
    seen: list[dict] = []  # type: ignore[type-arg]

    def authority(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        req = MakRequest.from_json(body)
        if len(seen) == 1:
            return httpx.Response(
                409, json={"type": "about:blank", "title": "Conflict", "status": 409,
                           "detail": "the MAK has no activations left", "code": "exhausted_key"},
                headers={"content-type": "application/problem+json"},
            )  # fmt: skip
        conf = MakConfirmation(VENDOR.key_id, key.serial, req.cmid, req.sku,
                               req.installation_id, 1_800_000_000).sign(VENDOR)  # fmt: skip
        return httpx.Response(200, json=MakResponse(req.cmid, conf).to_json())

    client = httpx.Client(transport=httpx.MockTransport(authority))
    act = Activation(
        make_profile(authority_url="http://authority.test"), tmp_path / "c", vm=False,
        post_mak=lambda url, r: mak_mod.post_mak(url, r, client=client),
    )  # fmt: skip
    act.install_key(key.text, sku=SERVER.name)
    st = act.activate()
    assert not st.activated and "no activations left" in (st.last_error or "")
    st = act.activate()
    assert st.activated and st.permanent and st.next_action_at is None
    assert seen[0]["mak"] == key.text and seen[0]["format"] == "volact-mak-request"


# ---- real sockets ------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealHost]:
    base = tmp_path_factory.mktemp("realhost")
    profile = base / "profile.json"
    profile.write_text(PROFILE.dumps())
    host = RealHost(base / "host", profile, free_port(), ipv6=ipv6_loopback_available())
    try:
        yield host
    finally:
        host.stop()


def test_real_host_threshold_5_over_tcp(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, profile_file: Path, real_host: RealHost
) -> None:
    v6 = ipv6_loopback_available()
    for i in range(1, 6):
        home = str(tmp_path / f"c{i}")
        init(capsys, Path(home), profile_file, "--sku", SERVER.name)
        target = f"[::1]:{real_host.port}" if v6 and i % 2 else f"127.0.0.1:{real_host.port}"
        run(capsys, "client", "set-host", "--home", home, target)
        code, st, err = run_json(capsys, "client", "activate", "--home", home)
        assert st["count"] == i and st["required_count"] == 5
        if i < 5:
            assert code == 75 and st["result"] == "count_too_low" and st["state"] == "grace"
            assert f"counted {i} of the 5" in err
        else:
            assert code == 0 and st["result"] == "ok" and st["activated"] is True
            assert st["state"] == "licensed" and st["valid_until"].endswith("Z")
            assert st["host"] == target
    # Text output, the agent, and the event log.
    code, out, _ = run(capsys, "client", "activate", "--home", home)
    assert code == 0 and "activated" in out
    code, out, _ = run(capsys, "client", "agent", "--home", home, "--once")
    assert code == 0 and "idle: state=licensed" in out  # renewal not due yet
    _, ev, _ = run_json(capsys, "client", "events", "--home", home)
    sent = [e for e in ev["events"] if e["event"] == "request_sent"]
    done = [e for e in ev["events"] if e["event"] == "reply_processed"]
    assert sent[0]["state"] == "grace" and sent[-1]["state"] == "licensed"
    assert done[-1]["result"] == "ok" and done[-1]["count"] == 5
    assert done[-1]["activation_interval"] == 120 and done[-1]["renewal_interval"] == 10080


def test_failover_from_a_dead_host_to_a_live_one_through_bind(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, profile_file: Path,
    real_host: RealHost, bind9: object,
) -> None:  # fmt: skip
    zone = "branch.example"
    dead_port = free_port()
    upd = bind9.update(zone)  # type: ignore[attr-defined]
    upd.replace("_volact._tcp", 60, "SRV", f"0 0 {dead_port} dead-{dead_port}.{zone}.")
    upd.add("_volact._tcp", 60, "SRV", f"10 0 {real_host.port} live-{dead_port}.{zone}.")
    upd.replace(f"dead-{dead_port}", 60, "A", "127.0.0.1")
    upd.replace(f"live-{dead_port}", 60, "A", "127.0.0.1")
    reply = bind9.send(upd)  # type: ignore[attr-defined]
    assert reply.rcode() == 0
    ns = f"127.0.0.1:{bind9.port}"  # type: ignore[attr-defined]
    home = str(tmp_path / "c")
    init(capsys, Path(home), profile_file, "--sku", SERVER.name)
    run(capsys, "client", "set-domain", "--home", home, zone)
    code, st, err = run_json(capsys, "client", "activate", "--home", home, "--nameserver", ns)
    assert st["host"] == f"live-{dead_port}.{zone}:{real_host.port}", err
    assert st["result"] in ("ok", "count_too_low")
    assert code == (0 if st["result"] == "ok" else 1)
    _, ev, _ = run_json(capsys, "client", "events", "--home", home)
    failed = [e for e in ev["events"] if e["event"] == "host_failed"]
    assert failed and failed[0]["host"].startswith(f"dead-{dead_port}")
    # Host caching: the next attempt goes straight to the live host (no SRV lookup).
    _code, st, err = run_json(capsys, "client", "activate", "--home", home, "--nameserver", ns)
    assert st["host"] == f"live-{dead_port}.{zone}:{real_host.port}", err
    _, ev2, _ = run_json(capsys, "client", "events", "--home", home)
    later = ev2["events"][len(ev["events"]) :]
    assert later and not [e for e in later if e["event"] in ("srv_lookup", "host_failed")]


# ---- revocations -------------------------------------------------------------------


def test_refresh_revocations_over_http(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, profile_file: Path
) -> None:
    import base64
    import http.server
    import threading

    from volact.documents import RevocationList

    answer: dict[str, object] = {"sequence": None, "revocation_list": None}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(answer).encode()
            self.send_response(200 if self.path == "/v1/revocations" else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    home = str(tmp_path / "c")
    init(capsys, Path(home), profile_file, "--sku", SERVER.name)

    def publish(signer: SigningKey, seq: int) -> None:
        data = RevocationList(signer.key_id, seq, 1_800_000_000,
                              host_ids=frozenset({bytes(8)})).sign(signer)  # fmt: skip
        answer.update(sequence=seq, revocation_list=base64.b64encode(data).decode())

    try:
        code, out, _ = run(capsys, "client", "refresh-revocations", "--home", home,
                           "--authority", url)  # fmt: skip
        assert code == 0 and "no revocation list" in out
        publish(VENDOR, 2)
        code, obj, _ = run_json(capsys, "client", "refresh-revocations", "--home", home,
                                "--authority", url)  # fmt: skip
        assert code == 0 and obj == {"updated": True, "sequence": 2, "previous": None,
                                     "offered": 2}  # fmt: skip
        publish(VENDOR, 1)  # a rollback is refused
        code, out, _ = run(capsys, "client", "refresh-revocations", "--home", home,
                           "--authority", url)  # fmt: skip
        assert code == 0 and "unchanged" in out and "sequence 2" in out
        publish(SigningKey.from_seed(bytes([5]) * 32), 9)  # not this vendor's
        code, _, err = run(capsys, "client", "refresh-revocations", "--home", home,
                           "--authority", url)  # fmt: skip
        assert code == 1 and "vendor key" in err
        _, st, _ = run_json(capsys, "client", "status", "--home", home)
        assert st["revocation_sequence"] == 2
    finally:
        server.shutdown()
        server.server_close()
    code, _, err = run(capsys, "client", "refresh-revocations", "--home", home,
                       "--authority", url)  # fmt: skip
    assert code == 1 and "did not answer" in err
    code, _, err = run(capsys, "client", "refresh-revocations", "--home", home)
    assert code == 1 and "--authority" in err


# ---- files at rest, failed init, what a MAK machine says (issues 11.9, 12) -----------


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_home_and_its_files_are_the_owners_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, profile_file: Path
) -> None:
    import os

    old = os.umask(0o022)  # the usual umask: what made state.json 0644 in a 0755 home
    try:
        home = tmp_path / "c"
        init(capsys, home, profile_file)
        mak = ProductKey.generate(KeyKind.MAK, bytes(range(12)))
        assert run(capsys, "client", "install-key", "--home", str(home), mak.text,
                   "--sku", SERVER.name)[0] == 0  # fmt: skip
        assert mak.text in (home / "state.json").read_text()  # the MAK, in full...
        assert _mode(home) == 0o700  # ...in a home nobody else can enter
        files = {p.name: _mode(p) for p in home.iterdir()}
        assert files == dict.fromkeys(["state.json", "profile.json", "events.jsonl", ".lock"],
                                      0o600)  # fmt: skip
        assert mak.text not in (home / "events.jsonl").read_text()  # the log masks it
        # The offline request carries the MAK too: written owner-only.
        out = tmp_path / "req.json"
        assert run(capsys, "client", "mak-request", "--home", str(home), "--out", str(out))[0] == 0
        assert mak.text in out.read_text() and _mode(out) == 0o600
        # A home written by an older version (0755, files 0644) is narrowed when written.
        for p in home.iterdir():
            p.chmod(0o644)
        assert run(capsys, "client", "set-vm", "--home", str(home), "no")[0] == 0
        assert _mode(home / "state.json") == 0o600 and _mode(home / "events.jsonl") == 0o600
        home.chmod(0o755)
        init(capsys, home, profile_file, "--force")  # a re-initialised home is narrowed
        assert _mode(home) == 0o700
        # An existing folder with other files in it is not narrowed (only the home's files).
        shared = tmp_path / "shared"
        shared.mkdir(mode=0o755)
        (shared / "notes.txt").write_text("someone else's")
        init(capsys, shared, profile_file)
        assert _mode(shared) == 0o755 and _mode(shared / "state.json") == 0o600
    finally:
        os.umask(old)


def test_a_failed_init_leaves_nothing_behind(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, profile_file: Path
) -> None:
    home = tmp_path / "new" / "deeper" / "c"
    code, _, err = run(capsys, "client", "init", "--home", str(home), "--profile",
                       str(profile_file), "--sku", "Acme Nonexistent 1999")  # fmt: skip
    assert code != 0 and "Acme Nonexistent 1999" in err
    assert not (tmp_path / "new").exists()
    # A write that fails half-way (here: the event log is a folder) is undone too.
    from volact.client.api import init_home
    from volact.client.store import ClientStore
    from volact.errors import StoreError

    target = tmp_path / "half" / "c"
    real_append = ClientStore.append_event

    def failing(self: ClientStore, event: dict) -> None:  # type: ignore[type-arg]
        raise StoreError("disk full")

    ClientStore.append_event = failing  # type: ignore[method-assign]
    try:
        with pytest.raises(StoreError, match="disk full"):
            init_home(PROFILE, target, sku=SERVER.name, now=1_800_000_000)
    finally:
        ClientStore.append_event = real_append  # type: ignore[method-assign]
    assert not (tmp_path / "half").exists()
    # An existing folder is kept, only the home's own files go.
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "mine.txt").write_text("x")
    code, _, _ = run(capsys, "client", "init", "--home", str(keep), "--profile",
                     str(profile_file), "--sku", "Acme Nonexistent 1999")  # fmt: skip
    assert code != 0 and sorted(p.name for p in keep.iterdir()) == ["mine.txt"]


def test_a_mak_machine_says_forever_in_activate_and_status(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, profile_file: Path
) -> None:
    home = str(tmp_path / "c")
    init(capsys, Path(home), profile_file)
    mak = ProductKey.generate(KeyKind.MAK, bytes(range(12)))
    run(capsys, "client", "install-key", "--home", home, mak.text, "--sku", SERVER.name)
    req_path = tmp_path / "req.json"
    run(capsys, "client", "mak-request", "--home", home, "--out", str(req_path))
    req = MakRequest.from_json(req_path.read_text())
    conf = MakConfirmation(VENDOR.key_id, mak.serial, req.cmid, req.sku,
                           req.installation_id, 1_800_000_000).sign(VENDOR)  # fmt: skip
    resp = tmp_path / "resp.json"
    resp.write_text(dumps(MakResponse(req.cmid, conf)))
    assert run(capsys, "client", "mak-apply", "--home", home, str(resp))[0] == 0
    code, out, _ = run(capsys, "client", "activate", "--home", home)
    assert code == 0 and "valid until forever" in out
    code, out, _ = run(capsys, "client", "status", "--home", home)
    line = next(x for x in out.splitlines() if x.startswith("valid until:"))
    assert code == 0 and line.split(":", 1)[1].strip() == "forever"
    # Scripts read the same thing from both: permanent, no end date.
    for command in ("activate", "status"):
        _, st, _ = run_json(capsys, "client", command, "--home", home)
        assert st["permanent"] is True and st["valid_until"] is None
