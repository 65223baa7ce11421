"""The real `volact authority serve` process, end to end over HTTP on 127.0.0.1.

Online host activation, MAK direct, a MAK proxy of 100 machines in one call via
`volact mak proxy`, the 50-way race against a MAK with 10 activations left on
SQLite and on PostgreSQL with two workers, and a clean SIGTERM shutdown.
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from volact.cli import main
from volact.documents import installation_id, verify_host_license, verify_mak_confirmation
from volact.exchanges import HostActivationRequest, MakRequest, MakResponse, dumps
from volact.profile import ProductProfile
from volact.signing import SigningKey

NOW = 1_800_000_000
START_TIMEOUT = 60.0


@dataclass
class Server:
    home: Path
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return int(self.proc.returncode)


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    obj = json.loads(out)
    assert isinstance(obj, dict)
    return obj


def init_home(tmp: Path, capsys: pytest.CaptureFixture[str], database: str | None = None) -> Path:
    home = tmp / "auth"
    extra = ["--database", database] if database else []
    cli_json(capsys, "authority", "init", "--home", str(home), "--demo-catalog", *extra)
    return home


def start(home: Path, *args: str, nofile: int | None = None) -> Server:
    """``serve`` on a free port; ``nofile`` limits its open files (as a service's would be)."""
    log = home / "serve.log"
    cmd = [
        sys.executable,
        "-c",
        "from volact.cli import run; run()",
        "authority",
        "serve",
        "--home",
        str(home),
        "--listen",
        "127.0.0.1:0",
        *args,
    ]

    def limit_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with log.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, preexec_fn=limit_files)
    deadline = time.monotonic() + START_TIMEOUT
    serve_file = home / "serve.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {log.read_text()}")
        if serve_file.exists():
            try:
                url = json.loads(serve_file.read_text())["url"]
            except (ValueError, KeyError):
                url = None
            if url:
                try:
                    if httpx.get(url + "/v1/health", timeout=5).status_code == 200:
                        return Server(home, proc, url, log)
                except httpx.HTTPError:
                    pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"serve did not become ready: {log.read_text()}")


@pytest.fixture
def sqlite_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Server]:
    home = init_home(tmp_path, capsys)
    server = start(home)
    yield server
    server.stop()


def sku_of(home: Path, capsys: pytest.CaptureFixture[str], group: str) -> uuid.UUID:
    shown = cli_json(capsys, "authority", "show", "--home", str(home))
    return uuid.UUID(next(s["id"] for s in shown["skus"] if s["group"] == group))


def issue(home: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    return str(cli_json(capsys, "authority", "issue-key", "--home", str(home), *args)["key"])


def vendor_pub(home: Path, capsys: pytest.CaptureFixture[str]) -> bytes:
    out = home / "profile.json"
    cli_json(capsys, "authority", "export-profile", "--home", str(home), "--out", str(out))
    return ProductProfile.loads(out.read_text()).vendor_public_key


def mak_req(mak: str, sku: uuid.UUID, cmid: uuid.UUID | None = None) -> MakRequest:
    cmid = cmid or uuid.uuid4()
    return MakRequest(mak, cmid, sku, installation_id(cmid, sku), f"ws-{cmid.hex[:6]}")


def test_online_host_activation_and_mak_direct(
    sqlite_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    home, url = sqlite_server.home, sqlite_server.url
    pub = vendor_pub(home, capsys)
    host_key = issue(home, capsys, "--kind", "host", "--group", "server")
    host = SigningKey.generate()
    req = HostActivationRequest(host_key, b"\x42" * 8, host.public_key, "kms.corp.example")
    r = httpx.post(url + "/v1/hosts/activate", json=req.to_json(), timeout=10)
    assert r.status_code == 200, r.text
    lic = verify_host_license(base64.b64decode(r.json()["host_license"]), pub, now=NOW)
    assert lic.host_public_key == host.public_key

    sku = sku_of(home, capsys, "desktop")
    mak = issue(home, capsys, "--kind", "mak", "--group", "desktop", "--activations", "5")
    m = mak_req(mak, sku)
    r = httpx.post(url + "/v1/mak/activate", json=m.to_json(), timeout=10)
    assert r.status_code == 200, r.text
    conf = MakResponse.from_json(r.json()).confirmation
    assert conf is not None
    verify_mak_confirmation(conf, pub, cmid=m.cmid, sku=sku)
    # The CLI, reading the same store, sees the activation.
    detail = cli_json(capsys, "authority", "keys", "--home", str(home), mak)
    assert detail["activations_used"] == 1 and detail["machines"][0]["cmid"] == str(m.cmid)
    r = httpx.post(url + "/v1/mak/activate", json={"format": "nope"}, timeout=10)
    assert r.status_code == 422 and r.json()["code"] == "malformed_request"


def test_mak_proxy_of_100_machines_in_one_call(
    sqlite_server: Server, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = sqlite_server.home
    pub = vendor_pub(home, capsys)
    sku = sku_of(home, capsys, "desktop")
    mak = issue(home, capsys, "--kind", "mak", "--group", "desktop", "--activations", "100")
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    reqs = [mak_req(mak, sku) for _ in range(100)]
    for i, r in enumerate(reqs):
        (in_dir / f"machine-{i:03}.json").write_text(dumps(r))
    (in_dir / "README.txt").write_text("not a request")
    # A machine name with a NUL is skipped, with why; it does not sink the others.
    nul = mak_req(mak, sku).to_json()
    nul["workstation"] = "ws\x00"
    (in_dir / "machine-nul.json").write_text(json.dumps(nul))
    # One more machine than the key allows: answered with a precise error.
    extra = mak_req(mak, sku)
    (in_dir / "machine-extra.json").write_text(dumps(extra))
    summary = cli_json(
        capsys,
        "mak",
        "proxy",
        "--authority",
        sqlite_server.url,
        "--in",
        str(in_dir),
        "--out",
        str(out_dir),
    )
    assert summary["requests"] == 101
    assert summary["activated"] == 100 and summary["refused_by_code"] == {"exhausted_key": 1}
    assert [s["file"] for s in summary["skipped"]] == ["README.txt", "machine-nul.json"]
    assert "control character U+0000" in summary["skipped"][1]["reason"]
    assert not (out_dir / "machine-nul.json").exists()
    for i, r in enumerate(reqs):
        resp = MakResponse.from_json((out_dir / f"machine-{i:03}.json").read_text())
        assert resp.confirmation is not None
        verify_mak_confirmation(resp.confirmation, pub, cmid=r.cmid, sku=sku)
    refused = MakResponse.from_json((out_dir / "machine-extra.json").read_text())
    assert refused.confirmation is None and refused.error_code == "exhausted_key"
    # Proxying the same folder again charges nothing: every machine is known.
    again = cli_json(
        capsys,
        "mak",
        "proxy",
        "--authority",
        sqlite_server.url,
        "--in",
        str(in_dir),
        "--out",
        str(out_dir),
    )
    assert again["activated"] == 100


def test_mak_proxy_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(
        [
            "mak",
            "proxy",
            "--authority",
            "http://127.0.0.1:9",
            "--in",
            str(empty),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 1 and "no MAK request files" in capsys.readouterr().err
    (empty / "a.json").write_text(dumps(mak_req("2" * 25, uuid.uuid4())))
    code = main(
        [
            "mak",
            "proxy",
            "--authority",
            "http://127.0.0.1:9",
            "--in",
            str(empty),
            "--out",
            str(tmp_path / "o"),
            "--timeout",
            "2",
        ]
    )
    assert code == 1 and "cannot reach the authority" in capsys.readouterr().err
    assert not list((tmp_path / "o").glob("*.json"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--authority", "http://[::1"], "malformed URL"),
        (["--authority", "http://xn--a.com"], "malformed URL"),  # httpx's IDNA refuses it
        (["--authority", "http://a..b"], "malformed host name"),
        (["--authority", "notaurl"], "http:// or https://"),
        (["--authority", "ftp://127.0.0.1/"], "http:// or https://"),
        (["--authority", "http://127.0.0.1:9", "--timeout", "0"], "--timeout"),
        (["--authority", "http://127.0.0.1:9", "--timeout", "-1"], "--timeout"),
        (["--authority", "http://127.0.0.1:9", "--timeout", "nan"], "--timeout"),
    ],
)
def test_mak_proxy_refuses_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    (in_dir / "a.json").write_text(dumps(mak_req("2" * 25, uuid.uuid4())))
    code = main(["mak", "proxy", "--in", str(in_dir), "--out", str(out_dir), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("volact: error:") and message in err
    assert not out_dir.exists() or not list(out_dir.iterdir())


def test_mak_proxy_refuses_to_write_over_its_requests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "reqs"
    folder.mkdir()
    text = dumps(mak_req("2" * 25, uuid.uuid4()))
    (folder / "a.json").write_text(text)
    (tmp_path / "link").symlink_to(folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.json").symlink_to(folder / "a.json")  # a response would replace it
    for out in (folder, tmp_path / "link", folder / ".." / "reqs", elsewhere):
        code = main(
            ["mak", "proxy", "--authority", "http://127.0.0.1:9", "--in", str(folder),
             "--out", str(out)]
        )  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and "overwrite" in err, (out, err)
        assert (folder / "a.json").read_text() == text
    # A folder inside --in is fine (files in sub-folders are not requests): it gets
    # as far as calling the authority.
    code = main(
        ["mak", "proxy", "--authority", "http://127.0.0.1:9", "--in", str(folder),
         "--out", str(folder / "responses"), "--timeout", "2"]
    )  # fmt: skip
    assert code == 1 and "cannot reach the authority" in capsys.readouterr().err


class _FlakyAuthority(BaseHTTPRequestHandler):
    """Answers the first /v1/mak/batch call (every item refused), then fails with 503."""

    calls = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls += 1
        if type(self).calls > 1:
            self.send_response(503)
            payload = json.dumps({"detail": "store unavailable"}).encode()
        else:
            self.send_response(200)
            results = [
                MakResponse(uuid.UUID(r["cmid"]), None, "unknown_key", "no such key").to_json()
                for r in body["requests"]
            ]
            payload = json.dumps({"results": results}).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args: Any) -> None:
        pass


def test_mak_proxy_writes_nothing_when_a_later_call_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    for i in range(1001):  # two calls: 1000, then 1
        (in_dir / f"m{i:04}.json").write_text(dumps(mak_req("2" * 25, uuid.uuid4())))
    _FlakyAuthority.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyAuthority)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        code = main(
            ["mak", "proxy", "--authority", url, "--in", str(in_dir), "--out", str(out_dir)]
        )
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert _FlakyAuthority.calls == 2
    assert code == 1 and "503" in err and "1000 of 1001" in err and "no response file" in err
    assert not out_dir.exists() or not list(out_dir.iterdir())


def race(url: str, reqs: list[MakRequest]) -> list[int]:
    """POST every request at once; the status codes."""
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=len(reqs))) as client:

        def one(r: MakRequest) -> int:
            return client.post(url + "/v1/mak/activate", json=r.to_json()).status_code

        with ThreadPoolExecutor(max_workers=len(reqs)) as pool:
            return list(pool.map(one, reqs, timeout=120))


def _race_test(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    home = server.home
    sku = sku_of(home, capsys, "desktop")
    mak = issue(home, capsys, "--kind", "mak", "--group", "desktop", "--activations", "12")
    for _ in range(2):  # leave exactly 10
        assert race(server.url, [mak_req(mak, sku)]) == [200]
    codes = race(server.url, [mak_req(mak, sku) for _ in range(50)])
    assert codes.count(200) == 10 and codes.count(409) == 40
    detail = cli_json(capsys, "authority", "keys", "--home", str(home), mak)
    assert detail["activations_used"] == 12 and len(detail["machines"]) == 12


def test_race_on_sqlite_two_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = start(init_home(tmp_path, capsys), "--workers", "2")
    try:
        _race_test(server, capsys)
    finally:
        assert server.stop() == 0


def test_race_on_postgres_two_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres: Any
) -> None:
    url = postgres.create_database("serve_" + uuid.uuid4().hex[:12])
    home = init_home(tmp_path, capsys, url)
    server = start(home, "--workers", "2")
    try:
        health = httpx.get(server.url + "/v1/health", timeout=5).json()
        assert health["schema_version"] >= 1
        _race_test(server, capsys)
        # A host key raced by 20 hosts at once still stops at 6.
        host_key = issue(home, capsys, "--kind", "host", "--group", "server")
        reqs = [
            HostActivationRequest(host_key, bytes([i]) * 8, SigningKey.generate().public_key, "h")
            for i in range(20)
        ]
        with httpx.Client(timeout=60) as client, ThreadPoolExecutor(max_workers=20) as pool:
            codes = list(
                pool.map(
                    lambda r: (
                        client.post(server.url + "/v1/hosts/activate", json=r.to_json()).status_code
                    ),
                    reqs,
                    timeout=120,
                )
            )
        assert codes.count(200) == 6 and codes.count(409) == 14
    finally:
        assert server.stop() == 0


def test_sigterm_stops_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = init_home(tmp_path, capsys)
    server = start(home)
    assert (home / "serve.json").exists()
    assert server.stop() == 0
    assert not (home / "serve.json").exists()
    assert "listening on http://127.0.0.1:" in server.log.read_text()
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url + "/v1/health", timeout=2)


def test_a_second_serve_on_the_same_home_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = init_home(tmp_path, capsys)
    first = start(home)
    try:
        before = (home / "serve.json").read_text()
        second = subprocess.run(
            [sys.executable, "-c", "from volact.cli import run; run()", "authority", "serve",
             "--home", str(home), "--listen", "127.0.0.1:0"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 1, second.stderr
        assert f"pid {first.proc.pid}" in second.stderr and "stop it first" in second.stderr
        # The first one's serve.json is untouched and it still answers.
        assert (home / "serve.json").read_text() == before
        assert httpx.get(first.url + "/v1/health", timeout=5).status_code == 200
    finally:
        assert first.stop() == 0
    assert not (home / "serve.json").exists()
    # Once the first has stopped, the home can be served again.
    again = start(home)
    assert again.stop() == 0


def test_serve_removes_only_its_own_serve_file(tmp_path: Path) -> None:
    from volact.authority.vault import remove_serve_file

    (tmp_path / "serve.json").write_text(json.dumps({"pid": 4242, "url": "http://x"}))
    remove_serve_file(tmp_path, 4343)
    assert (tmp_path / "serve.json").exists()
    remove_serve_file(tmp_path, 4242)
    assert not (tmp_path / "serve.json").exists()
    remove_serve_file(tmp_path, 4242)  # already gone: nothing to do


def test_serve_refuses_bad_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = init_home(tmp_path, capsys)
    code = main(["authority", "serve", "--home", str(home), "--listen", "nonsense"])
    assert code == 2 and "ADDR:PORT" in capsys.readouterr().err
    code = main(["authority", "serve", "--home", str(home), "--workers", "0"])
    assert code == 2
    code = main(["authority", "serve", "--home", str(home), "--database", "nosuch://x"])
    assert code == 1 and "database" in capsys.readouterr().err
    code = main(["authority", "serve", "--home", str(home), "--log-level", "loud"])
    assert code == 2 and "invalid choice" in capsys.readouterr().err


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, f"{argv}: {err}"
    return out


def test_through_the_host_and_client_clis(
    sqlite_server: Server, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The other parts' commands against the real service: host online and by file,
    a MAK client online, by file, and through `volact mak proxy`."""
    home, url = sqlite_server.home, sqlite_server.url
    profile = tmp_path / "profile.json"
    cli_json(
        capsys,
        "authority",
        "export-profile",
        "--home",
        str(home),
        "--out",
        str(profile),
        "--authority-url",
        url,
    )
    host_key = issue(home, capsys, "--kind", "host", "--group", "server", "--activations", "2")

    # Online host activation.
    h1 = tmp_path / "h1"
    run_cli(
        capsys, "host", "init", "--home", str(h1), "--profile", str(profile), "--fqdn", "a.test"
    )
    run_cli(capsys, "host", "install-key", "--home", str(h1), host_key)
    got = cli_json(capsys, "host", "activate", "--home", str(h1), "--authority", url)
    assert got["activated"] is True and sorted(got["licensed_groups"]) == ["desktop", "server"]

    # Host activation by file.
    h2, req, resp = tmp_path / "h2", tmp_path / "host-req.json", tmp_path / "host-resp.json"
    run_cli(
        capsys, "host", "init", "--home", str(h2), "--profile", str(profile), "--fqdn", "b.test"
    )
    run_cli(capsys, "host", "install-key", "--home", str(h2), host_key)
    run_cli(capsys, "host", "activate", "--home", str(h2), "--offline-request", str(req))
    cli_json(
        capsys,
        "authority",
        "activate-host",
        "--home",
        str(home),
        "--request",
        str(req),
        "--out",
        str(resp),
    )
    run_cli(capsys, "host", "activate", "--home", str(h2), "--offline-response", str(resp))
    assert cli_json(capsys, "host", "status", "--home", str(h2))["activated"] is True
    # The key's two hosts are used: a third host is refused with the authority's reason.
    h3 = tmp_path / "h3"
    run_cli(
        capsys, "host", "init", "--home", str(h3), "--profile", str(profile), "--fqdn", "c.test"
    )
    run_cli(capsys, "host", "install-key", "--home", str(h3), host_key)
    assert main(["host", "activate", "--home", str(h3), "--authority", url]) == 1
    assert "exhausted_key" in capsys.readouterr().err

    # MAK: one client online, one by file, two through the proxy.
    mak = issue(home, capsys, "--kind", "mak", "--group", "desktop", "--activations", "4")
    clients = [tmp_path / f"c{i}" for i in range(4)]
    for c in clients:
        run_cli(capsys, "client", "init", "--home", str(c), "--profile", str(profile))
        run_cli(capsys, "client", "install-key", "--home", str(c), mak, "--sku", "Professional")
    assert cli_json(capsys, "client", "activate", "--home", str(clients[0]))["activated"] is True
    mreq, mresp = tmp_path / "mak-req.json", tmp_path / "mak-resp.json"
    run_cli(capsys, "client", "mak-request", "--home", str(clients[1]), "--out", str(mreq))
    cli_json(
        capsys,
        "authority",
        "mak-activate",
        "--home",
        str(home),
        "--request",
        str(mreq),
        "--out",
        str(mresp),
    )
    assert cli_json(capsys, "client", "mak-apply", "--home", str(clients[1]), str(mresp))[
        "activated"
    ]
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    for c in clients[2:]:
        run_cli(
            capsys,
            "client",
            "mak-request",
            "--home",
            str(c),
            "--out",
            str(in_dir / f"{c.name}.json"),
        )
    summary = cli_json(
        capsys, "mak", "proxy", "--authority", url, "--in", str(in_dir), "--out", str(out_dir)
    )
    assert summary["activated"] == 2
    for c in clients[2:]:
        applied = cli_json(
            capsys, "client", "mak-apply", "--home", str(c), str(out_dir / f"{c.name}.json")
        )
        assert applied["activated"] is True
    detail = cli_json(capsys, "authority", "keys", "--home", str(home), mak)
    assert detail["activations_used"] == 4


# --------------------------------------------------------------------------- hostile clients


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _send_until_answered(port: int, head: bytes, chunk: bytes, most: int) -> tuple[bytes, int]:
    """Send ``head`` then ``chunk`` repeatedly (at most ``most`` bytes) until the server
    answers; return the answer's first bytes and how much body was sent."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        while sent < most and not answer:
            try:
                answer = sock.recv(4096)
                break
            except BlockingIOError:
                pass
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                time.sleep(0.005)
            except OSError:  # the server closed its side after answering
                break
        sock.settimeout(10)
        while b"\r\n\r\n" not in answer:
            more = sock.recv(4096)
            if not more:
                break
            answer += more
        return answer, sent


def test_a_huge_body_is_refused_over_a_real_socket(
    sqlite_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    port = int(sqlite_server.url.rsplit(":", 1)[1])
    rss = _rss_kib(sqlite_server.proc.pid)
    # 512 MiB announced: answered 413 on the headers alone; the sender gives up after 16 MiB.
    head = (b"POST /v1/mak/batch HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
            b"Content-Length: 536870912\r\n\r\n")  # fmt: skip
    answer, sent = _send_until_answered(port, head, b"[" * 65536, 16 << 20)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer and sent < 16 << 20
    # Chunked, no length announced: counted as it arrives and cut at the limit.
    head = (b"POST /v1/mak/batch HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    piece = b"[" * 65536
    answer, sent = _send_until_answered(
        port, head, b"%x\r\n" % len(piece) + piece + b"\r\n", 16 << 20
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 16 << 20
    assert _rss_kib(sqlite_server.proc.pid) - rss < 64 * 1024  # no 512 MiB buffered
    assert httpx.get(sqlite_server.url + "/v1/health", timeout=5).status_code == 200


async def _slow_headers(port: int, n: int, every: float, until: float, stop: Any) -> None:
    """``n`` connections that dribble header bytes, reopened when the server closes
    one, until ``stop`` is set or ``until`` (monotonic) passes."""

    def going() -> bool:
        return time.monotonic() < until and not stop.is_set()

    async def one() -> None:
        while going():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            try:
                writer.write(b"POST /v1/mak/batch HTTP/1.1\r\nHost: a\r\nX-Slow: ")
                while going():
                    await writer.drain()
                    try:
                        if await asyncio.wait_for(reader.read(100), every) == b"":
                            break
                    except TimeoutError:
                        writer.write(b"a")
            except OSError:
                pass
            finally:
                writer.close()

    await asyncio.gather(*(one() for _ in range(n)))


def _run_slow_headers(port: int, n: int, every: float, until: float, stop: Any) -> None:
    asyncio.run(_slow_headers(port, n, every, until, stop))


def test_slow_headers_do_not_shut_out_other_clients(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The service may open 256 files, as a service often may (systemd's soft limit
    # is 1024); 400 slow-header connections used to take every descriptor, and
    # then /v1/health failed nearly always.
    home = init_home(tmp_path, capsys)
    server = start(home, "--header-timeout", "2", nofile=256)
    port = int(server.url.rsplit(":", 1)[1])
    try:
        # One dribbling connection is closed at the header deadline.
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            sock.sendall(b"GET /v1/health HTTP/1.1\r\n")
            t0 = time.monotonic()
            got = b"x"
            while got and time.monotonic() - t0 < 12:
                sock.sendall(b"X")
                try:
                    sock.settimeout(0.5)
                    got = sock.recv(100)
                except TimeoutError:
                    got = b"x"
                except OSError:
                    got = b""
            assert got == b"", "a connection dribbling its headers was never closed"
        # 400 of them, from a process of its own (so it does not slow the probes),
        # against 20 probes of /v1/health on new connections.
        ctx = multiprocessing.get_context("fork")
        stop = ctx.Event()
        attack = ctx.Process(
            target=_run_slow_headers, args=(port, 400, 0.5, time.monotonic() + 60, stop),
            daemon=True,
        )  # fmt: skip
        attack.start()
        time.sleep(2.0)  # let the attack fill the slots
        ok = 0
        for _ in range(20):
            try:
                with httpx.Client(timeout=5) as client:
                    ok += client.get(server.url + "/v1/health").status_code == 200
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        still_attacking = attack.is_alive()
        stop.set()
        attack.join(timeout=30)
        if attack.is_alive():
            attack.kill()
        assert still_attacking
        assert ok >= 18, f"/v1/health answered {ok} of 20 during the attack"
    finally:
        assert server.stop() == 0


def test_logs_never_hold_keys_or_tokens_even_at_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = init_home(tmp_path, capsys)
    token = cli_json(capsys, "authority", "token", "create", "--home", str(home))["token"]
    server = start(home, "--log-level", "trace")
    try:
        mak = issue(home, capsys, "--kind", "mak", "--group", "desktop")
        sku = sku_of(home, capsys, "desktop")
        auth = {"Authorization": f"Bearer {token}"}
        r = httpx.get(f"{server.url}/v1/keys/{mak}", headers=auth, timeout=10)
        assert r.status_code == 200
        r = httpx.get(f"{server.url}/v1/keys/{mak.replace('-', '')}", headers=auth, timeout=10)
        assert r.status_code == 200
        r = httpx.post(server.url + "/v1/mak/activate", json=mak_req(mak, sku).to_json())
        assert r.status_code == 200
    finally:
        assert server.stop() == 0
    log = server.log.read_text()
    assert "/v1/keys/***" in log and "Started scope" in log  # it did log the requests
    for secret in (mak, mak.replace("-", ""), token, token[4:]):
        assert secret not in log
