"""`volact authority` offline commands, end to end through ``main(argv)``."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from volact.cli import main
from volact.documents import installation_id, verify_host_license, verify_mak_confirmation
from volact.exchanges import (
    HostActivationRequest,
    HostActivationResponse,
    MakRequest,
    MakResponse,
    dumps,
)
from volact.keys import KeyKind, ProductKey
from volact.profile import ProductProfile
from volact.signing import SigningKey

NOW = 1_800_000_000


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:  # type: ignore[type-arg]
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert isinstance(obj, dict)
    return obj


@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    h = tmp_path / "auth"
    run_json(capsys, "authority", "init", "--home", str(h), "--demo-catalog")
    return h


def test_init_creates_private_key_and_refuses_twice(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = home / "vendor-key.pem"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    before = key_file.read_bytes()
    code, _, err = run(capsys, "authority", "init", "--home", str(home), "--demo-catalog")
    assert code == 1
    assert "refusing" in err
    assert key_file.read_bytes() == before


def test_init_needs_a_catalog(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(capsys, "authority", "init", "--home", str(tmp_path / "a"))
    assert code == 2
    assert not (tmp_path / "a" / "vendor-key.pem").exists()


def test_init_with_catalog_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cat = {
        "groups": [{"name": "pro", "threshold": 3, "covers": []}],
        "skus": [
            {
                "id": str(uuid.uuid4()),
                "name": "Tool Pro",
                "edition": "Pro",
                "product": "Tool",
                "group": "pro",
            }
        ],
    }
    f = tmp_path / "cat.json"
    f.write_text(json.dumps(cat))
    h = tmp_path / "h"
    run_json(capsys, "authority", "init", "--home", str(h), "--catalog", str(f), "--vendor", "X")
    shown = run_json(capsys, "authority", "show", "--home", str(h))
    assert shown["vendor"] == "X"
    assert [g["name"] for g in shown["groups"]] == ["pro"]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = run(
        capsys, "authority", "init", "--home", str(tmp_path / "h2"), "--catalog", str(bad)
    )
    assert code == 1 and "JSON" in err


@pytest.mark.parametrize(
    "database",
    ["postgresql+psycopg://u@127.0.0.1:1/db", "sqlite:////nonexistent/dir/x.db", "nosuch://x"],
)
def test_failed_init_leaves_nothing_and_can_be_run_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], database: str
) -> None:
    parent = tmp_path / "new"
    home = parent / "home"
    code, _, err = run(
        capsys, "authority", "init", "--home", str(home), "--demo-catalog", "--database", database
    )
    assert code == 1 and "database" in err
    assert not parent.exists()  # the home and the parent it created are gone
    # A home directory that was already there stays, empty.
    home.mkdir(parents=True)
    code, _, err = run(
        capsys, "authority", "init", "--home", str(home), "--demo-catalog", "--database", database
    )
    assert code == 1 and list(home.iterdir()) == []
    # Nothing was left to refuse a second init.
    assert run_json(capsys, "authority", "init", "--home", str(home), "--demo-catalog")["vendor"]


def test_init_failing_after_the_store_removes_store_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from volact.authority import vault

    real = vault._write_exclusive

    def fail_on_config(path: Path, data: bytes, mode: int) -> None:
        if path.name == vault.CONFIG_FILE:
            raise vault.ConfigurationError(f"cannot create {path}: No space left on device")
        real(path, data, mode)

    monkeypatch.setattr(vault, "_write_exclusive", fail_on_config)
    home = tmp_path / "h"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "authority", "init", "--home", str(home), "--demo-catalog")
    assert code == 1 and "No space" in err
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]
    monkeypatch.setattr(vault, "_write_exclusive", real)
    assert run_json(capsys, "authority", "init", "--home", str(home), "--demo-catalog")["vendor"]


def test_passphrase_protected_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    h = tmp_path / "h"
    out = run_json(
        capsys,
        "authority",
        "init",
        "--home",
        str(h),
        "--demo-catalog",
        "--passphrase-file",
        str(pw),
    )
    assert out["encrypted"] is True
    assert b"ENCRYPTED" in (h / "vendor-key.pem").read_bytes()
    # Commands that sign need the passphrase, and a wrong one is refused clearly.
    code, _, err = run(capsys, "authority", "revoke", "--home", str(h), "--host-id", "00" * 8)
    assert code == 1 and "passphrase" in err
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    code, _, err = run(
        capsys,
        "authority",
        "revoke",
        "--home",
        str(h),
        "--host-id",
        "00" * 8,
        "--passphrase-file",
        str(wrong),
    )
    assert code == 1 and "passphrase" in err
    # A host id this authority never activated is refused (a typo revokes nothing).
    code, _, err = run(
        capsys, "authority", "revoke", "--home", str(h), "--host-id", "00" * 8,
        "--passphrase-file", str(pw),
    )  # fmt: skip
    assert code == 1 and "no host with id 0000000000000000" in err
    key = run_json(capsys, "authority", "issue-key", "--home", str(h), "--kind", "host",
                   "--group", "server")["key"]  # fmt: skip
    done = run_json(
        capsys, "authority", "revoke", "--home", str(h), "--host-key", key,
        "--passphrase-file", str(pw),
    )  # fmt: skip
    assert done["sequence"] == 1 and done["host_key_ids"] == [ProductKey.parse(key).serial.hex()]


def test_issue_key_and_show(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    k = run_json(
        capsys, "authority", "issue-key", "--home", str(home), "--kind", "host", "--group", "server"
    )
    assert k["kind"] == "host" and k["group"] == "server"
    assert k["activations"] == 6 and k["reactivations"] == 9
    assert ProductKey.parse(k["key"]).kind is KeyKind.HOST
    m = run_json(
        capsys,
        "authority",
        "issue-key",
        "--home",
        str(home),
        "--kind",
        "mak",
        "--group",
        "desktop",
        "--activations",
        "3",
    )
    assert ProductKey.parse(m["key"]).kind is KeyKind.MAK and m["activations_left"] == 3
    code, out, _ = run(
        capsys, "authority", "issue-key", "--home", str(home), "--kind", "mak", "--group", "desktop"
    )
    assert code == 0 and ProductKey.parse(out.strip()).kind is KeyKind.MAK
    code, _, err = run(
        capsys, "authority", "issue-key", "--home", str(home), "--kind", "mak", "--group", "nosuch"
    )
    assert code == 1 and "server" in err
    code, _, err = run(
        capsys,
        "authority",
        "issue-key",
        "--home",
        str(home),
        "--kind",
        "mak",
        "--group",
        "desktop",
        "--activations",
        "0",
    )
    assert code == 1 and "activations" in err
    shown = run_json(capsys, "authority", "show", "--home", str(home))
    groups = {g["name"]: g["threshold"] for g in shown["groups"]}
    assert groups == {"server": 5, "desktop": 25}
    assert len(shown["skus"]) == 4
    for s in shown["skus"]:
        assert {"id", "name", "group", "gvlk"} <= set(s)
        assert ProductKey.parse(s["gvlk"]).kind is KeyKind.GVLK
    listed = run_json(capsys, "authority", "keys", "--home", str(home))
    assert {x["key"] for x in listed["keys"]} >= {k["key"], m["key"]}


def test_export_profile(home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    run_json(
        capsys,
        "authority",
        "export-profile",
        "--home",
        str(home),
        "--out",
        str(out),
        "--authority-url",
        "http://127.0.0.1:9/",
    )
    profile = ProductProfile.loads(out.read_text())
    shown = run_json(capsys, "authority", "show", "--home", str(home))
    assert profile.dns_label == "_volact._tcp"
    assert profile.authority_url == "http://127.0.0.1:9/"
    assert profile.vendor_key_id.hex() == shown["vendor_key_id"]
    assert {str(k): v for k, v in profile.gvlks.items()} == {
        s["id"]: s["gvlk"] for s in shown["skus"]
    }
    assert profile.revocations is None
    # After a revocation the exported profile carries the signed list.
    key = _issue(capsys, home, "--kind", "host", "--group", "server")
    run_json(capsys, "authority", "revoke", "--home", str(home), "--host-key", key)
    run_json(capsys, "authority", "export-profile", "--home", str(home), "--out", str(out))
    rl = ProductProfile.loads(out.read_text()).revocation_list()
    assert rl is not None and rl.host_key_ids == {ProductKey.parse(key).serial}


@pytest.mark.parametrize("url", ["notaurl", "ftp://x.example", "http://", "https://[::1", "h:80"])
def test_export_profile_refuses_a_bad_authority_url(
    home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, url: str
) -> None:
    out = tmp_path / "p.json"
    code, _, err = run(
        capsys, "authority", "export-profile", "--home", str(home), "--out", str(out),
        "--authority-url", url,
    )  # fmt: skip
    assert code == 2 and "--authority-url" in err
    assert not out.exists()
    for good in ("https://activate.example.com", "http://[::1]:8088/"):
        got = run_json(
            capsys, "authority", "export-profile", "--home", str(home), "--out", str(out),
            "--authority-url", good,
        )  # fmt: skip
        assert got["authority_url"] == good


def _issue(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> str:
    k = run_json(capsys, "authority", "issue-key", "--home", str(home), *args)
    return str(k["key"])


def test_offline_host_activation_round_trip(
    home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    host_key = _issue(capsys, home, "--kind", "host", "--group", "server")
    host = SigningKey.generate()
    req = HostActivationRequest(host_key, b"\x01" * 8, host.public_key, "kms1.corp.example")
    (tmp_path / "req.json").write_text(dumps(req))
    run_json(
        capsys,
        "authority",
        "activate-host",
        "--home",
        str(home),
        "--request",
        str(tmp_path / "req.json"),
        "--out",
        str(tmp_path / "resp.json"),
    )
    resp = HostActivationResponse.from_json((tmp_path / "resp.json").read_text())
    profile = ProductProfile.loads(_export(capsys, home, tmp_path / "p.json"))
    lic = verify_host_license(resp.host_license, profile.vendor_public_key, now=NOW)
    assert lic.host_public_key == host.public_key
    assert lic.host_key_id == ProductKey.parse(host_key).serial
    assert lic.groups == ("desktop", "server")
    detail = run_json(capsys, "authority", "keys", "--home", str(home), host_key)
    assert detail["activations_used"] == 1 and detail["hosts"][0]["hostname"] == "kms1.corp.example"
    # A MAK file given to the host command is refused by its format tag.
    code, _, err = run(
        capsys,
        "authority",
        "activate-host",
        "--home",
        str(home),
        "--request",
        str(tmp_path / "resp.json"),
        "--out",
        str(tmp_path / "x"),
    )
    assert code == 1 and "not a host activation request" in err
    assert not (tmp_path / "x").exists()


def test_offline_mak_round_trip(
    home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    mak = _issue(capsys, home, "--kind", "mak", "--group", "desktop", "--activations", "1")
    shown = run_json(capsys, "authority", "show", "--home", str(home))
    sku = uuid.UUID(next(s["id"] for s in shown["skus"] if s["group"] == "desktop"))
    cmids = [uuid.uuid4(), uuid.uuid4()]
    for i, cmid in enumerate(cmids):
        req = MakRequest(mak, cmid, sku, installation_id(cmid, sku), f"ws{i}")
        (tmp_path / f"req{i}.json").write_text(dumps(req))
    run_json(
        capsys,
        "authority",
        "mak-activate",
        "--home",
        str(home),
        "--request",
        str(tmp_path / "req0.json"),
        "--out",
        str(tmp_path / "resp0.json"),
    )
    resp = MakResponse.from_json((tmp_path / "resp0.json").read_text())
    assert resp.confirmation is not None
    pub = ProductProfile.loads(_export(capsys, home, tmp_path / "p.json")).vendor_public_key
    conf = verify_mak_confirmation(resp.confirmation, pub, cmid=cmids[0], sku=sku)
    assert conf.mak_id == ProductKey.parse(mak).serial
    # Same machine again: answered, not charged; a second machine: the key is spent.
    run_json(
        capsys,
        "authority",
        "mak-activate",
        "--home",
        str(home),
        "--request",
        str(tmp_path / "req0.json"),
        "--out",
        str(tmp_path / "again.json"),
    )
    code, _, err = run(
        capsys,
        "authority",
        "mak-activate",
        "--home",
        str(home),
        "--request",
        str(tmp_path / "req1.json"),
        "--out",
        str(tmp_path / "r1"),
    )
    assert code == 1 and "all of its 1 activations" in err
    assert not (tmp_path / "r1").exists()


def _export(capsys: pytest.CaptureFixture[str], home: Path, out: Path) -> str:
    run_json(capsys, "authority", "export-profile", "--home", str(home), "--out", str(out))
    return out.read_text()


def test_tokens(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = run_json(capsys, "authority", "token", "create", "--home", str(home), "--name", "ops")
    assert t["token"].startswith("vat_")
    # Only the hash is stored: the token text is nowhere in the database file.
    assert t["token"].encode() not in (home / "authority.db").read_bytes()
    listed = run_json(capsys, "authority", "token", "list", "--home", str(home))
    assert listed["tokens"][0]["name"] == "ops" and "token" not in listed["tokens"][0]
    assert (
        run_json(capsys, "authority", "token", "revoke", "--home", str(home), "--name", "ops")[
            "revoked"
        ]
        == 1
    )
    code, _, _ = run(capsys, "authority", "token", "revoke", "--home", str(home), "--name", "ops")
    assert code == 1


def test_commands_on_a_missing_home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "authority", "show", "--home", str(tmp_path / "none"))
    assert code == 1 and "authority init" in err


def test_revoke_a_host_alone_or_with_its_host_key(
    home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = _issue(capsys, home, "--kind", "host", "--group", "server")
    serial = ProductKey.parse(key).serial.hex()

    def activate(host_id: bytes) -> tuple[int, str]:
        req = HostActivationRequest(key, host_id, SigningKey.generate().public_key, "h")
        (tmp_path / "req.json").write_text(dumps(req))
        code, _, err = run(
            capsys, "authority", "activate-host", "--home", str(home),
            "--request", str(tmp_path / "req.json"), "--out", str(tmp_path / "resp.json"),
        )  # fmt: skip
        return code, err

    assert activate(b"\x01" * 8)[0] == 0 and activate(b"\x02" * 8)[0] == 0
    code, out, _ = run(capsys, "authority", "revoke", "--home", str(home), "--host-id", "01" * 8)
    assert code == 0 and f"host key {serial}" in out and "--with-host-key" in out
    assert activate(b"\x03" * 8)[0] == 0  # the key still activates new host ids
    done = run_json(
        capsys, "authority", "revoke", "--home", str(home), "--host-id", "02" * 8,
        "--with-host-key",
    )  # fmt: skip
    assert done["host_ids"] == ["01" * 8, "02" * 8] and done["host_key_ids"] == [serial]
    assert done["host_key_id"] == serial and done["host_key_revoked"] is True
    code, err = activate(b"\x04" * 8)
    assert code == 1 and "revoked" in err
    code, _, err = run(capsys, "authority", "revoke", "--home", str(home), "--host-key", key,
                       "--with-host-key")  # fmt: skip
    assert code == 2 and "--with-host-key goes with --host-id" in err


def test_database_passwords_never_reach_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres: Any
) -> None:
    secret = "Sekr3t-pw"
    postgres.create_database("pw_" + uuid.uuid4().hex[:12])
    good = postgres.url.replace("://", f"://{postgres.user}:{secret}@", 1).replace(
        f"@{postgres.user}@", "@"
    )
    assert secret in good
    home = tmp_path / "auth"
    code, out, err = run(capsys, "authority", "init", "--home", str(home), "--demo-catalog",
                         "--database", good, "--json")  # fmt: skip
    assert code == 0, err
    assert secret not in out + err and ":***@" in json.loads(out)["database"]
    assert stat.S_IMODE((home / "authority.json").stat().st_mode) == 0o600
    # A URL nothing can use is named in the error, without its password.
    for bad in (f"postgresql+nodriver://u:{secret}@h/d", f"postgresql:/u:{secret}@h/d",
                f"postgresql+psycopg://u:{secret}@127.0.0.1:1/d"):  # fmt: skip
        code, out, err = run(capsys, "authority", "init", "--home", str(tmp_path / "x"),
                             "--demo-catalog", "--database", bad)  # fmt: skip
        assert code == 1 and secret not in out + err, err
        assert "***" in err or "connection" in err, err
        code, out, err = run(capsys, "authority", "keys", "--home", str(home),
                             "--database", bad)  # fmt: skip
        assert code == 1 and secret not in out + err, err
