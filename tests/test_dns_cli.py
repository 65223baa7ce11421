"""`volact host dns`: settings, show, publish and unpublish through ``main(argv)``.

The JSON contract of docs/cli.md, clear errors for bad input, and the
TSIG secret never appearing in any output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services import Bind9
from volact.cli import main

FQDN = "clihost.corp.example"


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dns-cli")
    assert main(["authority", "init", "--home", str(root / "a"), "--demo-catalog"]) == 0
    out = root / "profile.json"
    assert main(["authority", "export-profile", "--home", str(root / "a"), "--out", str(out)]) == 0
    return out


@pytest.fixture
def home(tmp_path: Path, profile: Path) -> Path:
    h = tmp_path / "host"
    assert main(["host", "init", "--home", str(h), "--profile", str(profile), "--fqdn", FQDN]) == 0
    return h


def _json(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 0) -> dict[str, object]:
    capsys.readouterr()
    assert main(argv) == code
    out = capsys.readouterr().out
    obj = json.loads(out)
    assert isinstance(obj, dict)
    return obj


def test_settings_round_trip_and_no_secret(
    home: Path, bind9: Bind9, capsys: pytest.CaptureFixture[str]
) -> None:
    key = bind9.write_key_file(home.parent / "host.key")
    st = _json(
        capsys,
        ["host", "dns", "--home", str(home), "--server", f"127.0.0.1:{bind9.port}",
         "--server", "[::1]:53", "--tsig-key-file", str(key),
         "--publish-domain", "branch.example,10,20", "--publish-domain", "lab.example",
         "--weight", "7", "--ttl", "300", "--enable", "--json"],
    )  # fmt: skip
    assert st["enabled"] is True and st["configured"] is True
    assert st["servers"] == [f"127.0.0.1:{bind9.port}", "[::1]:53"]
    assert st["tsig_key"] == {
        "file": str(key.resolve()),
        "name": bind9.tsig_key_name,
        "algorithm": "hmac-sha256",
    }
    assert st["fqdn"] == FQDN and st["ttl"] == 300 and st["label"] == "_volact._tcp"
    domains = st["domains"]
    assert isinstance(domains, list)
    assert [(d["domain"], d["priority"], d["weight"], d["published"]) for d in domains] == [
        ("corp.example", 0, 7, None),
        ("branch.example", 10, 20, None),
        ("lab.example", 0, 0, None),
    ]
    st = _json(
        capsys,
        ["host", "dns", "--home", str(home), "--remove-publish-domain", "lab.example",
         "--disable", "--json"],
    )  # fmt: skip
    assert st["enabled"] is False
    assert [d["domain"] for d in st["domains"]] == ["corp.example", "branch.example"]  # type: ignore[attr-defined]

    # Human output, JSON output and host status: the secret is nowhere.
    assert main(["host", "dns", "show", "--home", str(home)]) == 0
    human = capsys.readouterr().out
    assert "branch.example (priority 10, weight 20): never published" in human
    assert main(["host", "status", "--home", str(home), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["dns"]["tsig_key"]["name"] == bind9.tsig_key_name
    everything = human + json.dumps(status) + (home / "dns.json").read_text()
    assert bind9.tsig_secret_b64 not in everything


def test_publish_and_unpublish_json(
    home: Path, bind9: Bind9, capsys: pytest.CaptureFixture[str]
) -> None:
    key = bind9.write_key_file(home.parent / "host.key")
    assert main(["host", "dns", "--home", str(home), "--server", f"127.0.0.1:{bind9.port}",
                 "--tsig-key-file", str(key), "--publish-domain", "branch.example,1,2",
                 "--address", "192.0.2.44"]) == 0  # fmt: skip
    out = _json(capsys, ["host", "dns", "publish", "--home", str(home), "--json"])
    assert out["action"] == "publish" and out["ok"] is True
    results = out["results"]
    assert isinstance(results, list)
    assert [(r["domain"], r["ok"], r["reason"]) for r in results] == [
        ("corp.example", True, None),
        ("branch.example", True, None),
    ]
    assert results[0]["detail"] == f"SRV 0 0 1688 {FQDN}, A 192.0.2.44"
    assert results[1]["server"] == f"127.0.0.1:{bind9.port}"
    assert [rr.to_text() for rr in bind9.query(FQDN, "A").answer[0]] == ["192.0.2.44"]

    assert main(["host", "events", "--home", str(home), "--json"]) == 0
    kinds = [e["kind"] for e in json.loads(capsys.readouterr().out)["events"]]
    assert kinds.count("dns_publish_ok") == 2

    out = _json(capsys, ["host", "dns", "unpublish", "--home", str(home), "--json"])
    assert out["ok"] is True
    assert not bind9.query(FQDN, "A").answer
    srv = bind9.query("_volact._tcp.branch.example", "SRV")
    assert FQDN not in str(srv.answer)
    st = _json(capsys, ["host", "dns", "show", "--home", str(home), "--json"])
    assert [d["published"] for d in st["domains"]] == [False, False]  # type: ignore[attr-defined]


def test_failed_publish_exits_1_with_reason(
    home: Path, bind9: Bind9, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["host", "dns", "--home", str(home), "--server", f"127.0.0.1:{bind9.port}"]) == 0
    out = _json(capsys, ["host", "dns", "publish", "--home", str(home), "--json"], code=1)
    assert out["ok"] is False
    assert out["results"][0]["reason"] == "refused"  # type: ignore[index]
    assert "not signed" in out["results"][0]["detail"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--server", "127.0.0.1:0"], 1, "port must be 1..65535"),
        (["--publish-domain", "bad..example"], 1, "not a DNS label"),
        (["--publish-domain", "a.example,1"], 1, "DOMAIN,PRIORITY,WEIGHT"),
        (["--tsig-key-file", "/nonexistent/key"], 1, "does not exist"),
        (["--enable"], 1, "without a server"),
        (["--ttl", "0"], 1, "TTL must be"),
        (["--label", "_vlmcs._tcp"], 1, "another protocol"),
        (["--address", "0.0.0.0"], 1, "unicast"),
        (["--weight", "70000"], 2, "0..65535"),
        (["--remove-publish-domain", "x.example"], 1, "not in the publish list"),
    ],
)
def test_bad_settings_are_refused_and_change_nothing(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, needle: str
) -> None:
    capsys.readouterr()
    assert main(["host", "dns", "--home", str(home), *args]) == code
    err = capsys.readouterr().err
    assert needle in err
    assert not (home / "dns.json").exists()


def test_bad_key_file_content_is_refused_without_echo(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = home.parent / "bad.key"
    bad.write_text('key "k" { algorithm hmac-sha256; secret "SECRETSECRET!!"; };')
    assert main(["host", "dns", "--home", str(home), "--tsig-key-file", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "not valid base64" in err and "SECRETSECRET" not in err


def test_publish_needs_a_server_and_a_home(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["host", "dns", "publish", "--home", str(home)]) == 1
    assert "no DNS server is set" in capsys.readouterr().err
    assert main(["host", "dns", "show", "--home", str(tmp_path / "nowhere")]) == 1
    assert main(["host", "dns", "--server", "127.0.0.1"]) == 2
    assert "--home" in capsys.readouterr().err


def _leaks(secret: str, text: str, n: int = 6) -> list[str]:
    low = text.lower()
    return [
        secret[i : i + n] for i in range(len(secret) - n + 1) if secret[i : i + n].lower() in low
    ]


def test_malformed_key_file_shows_no_part_of_the_secret_anywhere(
    home: Path, bind9: Bind9, capsys: pytest.CaptureFixture[str]
) -> None:
    # A key file holding just the secret: its error goes to `show --json`
    # (tsig_key.error), `host status`, last_error, dns-state.json and host events.
    key = bind9.write_key_file(home.parent / "host.key")
    assert main(["host", "dns", "--home", str(home), "--server", f"127.0.0.1:{bind9.port}",
                 "--tsig-key-file", str(key)]) == 0  # fmt: skip
    secret = bind9.tsig_secret_b64
    key.write_text(secret + "\n")
    capsys.readouterr()
    assert main(["host", "dns", "--home", str(home), "--tsig-key-file", str(key)]) == 1
    outputs = [capsys.readouterr().err]
    st = _json(capsys, ["host", "dns", "show", "--home", str(home), "--json"])
    error = st["tsig_key"]["error"]  # type: ignore[index]
    assert "line 1" in error and "expected 'key" in error
    out = _json(capsys, ["host", "dns", "publish", "--home", str(home), "--json"], code=1)
    assert out["results"][0]["reason"] == "config"  # type: ignore[index]
    assert main(["host", "status", "--home", str(home), "--json"]) == 0
    assert main(["host", "events", "--home", str(home), "--json"]) == 0
    assert main(["host", "dns", "show", "--home", str(home)]) == 0
    captured = capsys.readouterr()
    outputs += [json.dumps(st), json.dumps(out), captured.out, captured.err]
    outputs.append((home / "dns-state.json").read_text())
    assert "dns_publish_failed" in captured.out
    for text in outputs:
        assert not _leaks(secret, text), text


def test_publish_with_no_domain_says_so_in_json(
    home: Path, bind9: Bind9, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["host", "dns", "--home", str(home), "--server", f"127.0.0.1:{bind9.port}",
                 "--fqdn", "localhost"]) == 0  # fmt: skip
    for action in ("publish", "unpublish"):
        out = _json(capsys, ["host", "dns", action, "--home", str(home), "--json"], code=1)
        assert out["ok"] is False and out["results"] == []
        assert "no parent domain" in str(out["error"]) and "--domain" in str(out["error"])
    capsys.readouterr()
    assert main(["host", "dns", "publish", "--home", str(home)]) == 1
    assert "nothing to publish" in capsys.readouterr().err


def test_home_and_json_before_or_after_the_subcommand(
    home: Path, bind9: Bind9, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["host", "dns", "--home", str(home), "--server", f"127.0.0.1:{bind9.port}",
                 "--no-tsig"]) == 0  # fmt: skip
    for argv in (
        ["--home", str(home), "show", "--json"],
        ["--home", str(home), "--json", "show"],
        ["show", "--home", str(home), "--json"],
        ["--home", str(home), "show", "--home", str(home), "--json"],
    ):
        st = _json(capsys, ["host", "dns", *argv])
        assert st["servers"] == [f"127.0.0.1:{bind9.port}"]
    capsys.readouterr()
    assert main(["host", "dns", "--home", str(home), "show"]) == 0
    assert "DNS publishing: disabled" in capsys.readouterr().out
    # publish goes out (and is refused: unsigned), found the home given first.
    out = _json(capsys, ["host", "dns", "--home", str(home), "publish", "--json"], code=1)
    assert out["results"][0]["reason"] == "refused"  # type: ignore[index]

    for argv, needle in (
        (["show"], "--home DIR is required"),
        (["--home", str(home), "show", "--home", str(home.parent)], "different directories"),
        (["--home", str(home), "--ttl", "60", "show"], "--ttl change settings"),
        (["--home", str(home), "--disable", "publish"], "--enable/--disable"),
    ):
        capsys.readouterr()
        assert main(["host", "dns", *argv]) == 2, argv
        assert needle in capsys.readouterr().err
    assert hostdns_settings(home)["ttl"] == 3600  # the refused --ttl changed nothing


def hostdns_settings(home: Path) -> dict[str, object]:
    obj = json.loads((home / "dns.json").read_text())
    assert isinstance(obj, dict)
    return obj


def test_bad_server_name_error_names_it_once(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["host", "dns", "--home", str(home), "--server", "bad host!"]) == 1
    err = capsys.readouterr().err
    assert err.count("bad host!") == 1, err
    assert "neither an IP address nor a host name" in err
