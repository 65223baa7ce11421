"""`volact host ...` through ``main(argv)``: init, keys, offline activation, admin output."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from volact import wire
from volact.catalog import demo_catalog
from volact.cli import main
from volact.documents import HostLicense
from volact.exchanges import HostActivationRequest, HostActivationResponse, dumps
from volact.host.activation import load_core
from volact.host.home import load_config
from volact.host.store import HostStore
from volact.keys import KeyKind, ProductKey
from volact.profile import ProductProfile
from volact.signing import SigningKey
from volact.testing.hosts import make_host_home

VENDOR = SigningKey.from_seed(b"\x11" * 32)
HOST_KEY = ProductKey.generate(KeyKind.HOST, b"\x22" * 12)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert isinstance(obj, dict)
    return obj


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    p = tmp_path / "profile.json"
    p.write_text(ProductProfile("Acme", VENDOR.public_key, demo_catalog()).dumps())
    return p


def authority_sign(
    request_file: Path,
    response_file: Path,
    *,
    vendor: SigningKey = VENDOR,
    groups: tuple[str, ...] = ("server", "desktop"),
) -> None:
    """What ``volact authority activate-host`` does, done here without an authority."""
    req = HostActivationRequest.from_json(request_file.read_text())
    lic = HostLicense(
        vendor.key_id,
        req.host_id,
        req.host_public_key,
        req.parsed_key().serial,
        groups,
        int(time.time()),
    ).sign(vendor)
    response_file.write_text(dumps(HostActivationResponse(lic)))


def test_init_install_key_offline_activation_status(
    tmp_path: Path, profile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "h"
    obj = run_json(
        capsys,
        "host",
        "init",
        "--home",
        str(home),
        "--profile",
        str(profile_file),
        "--fqdn",
        "kms1.corp.example",
    )
    assert obj["fqdn"] == "kms1.corp.example" and len(str(obj["host_id"])) == 16
    assert (home / "host-key.pem").stat().st_mode & 0o777 == 0o600
    code, _, err = run(capsys, "host", "init", "--home", str(home), "--profile", str(profile_file))
    assert code == 1 and "already a host home" in err

    st = run_json(capsys, "host", "status", "--home", str(home))
    assert st["activated"] is False and st["count"] == 0 and "dns" in st

    # A mistyped key and a MAK are refused with clear messages.
    bad = HOST_KEY.text[:-1] + ("2" if HOST_KEY.text[-1] != "2" else "3")
    code, _, err = run(capsys, "host", "install-key", "--home", str(home), bad)
    assert code == 2 and "mistyped" in err
    mak = ProductKey.generate(KeyKind.MAK, b"\x33" * 12)
    code, _, err = run(capsys, "host", "install-key", "--home", str(home), mak.text)
    assert code == 2 and "this is a MAK, not a host key" in err
    code, _, err = run(
        capsys,
        "host",
        "activate",
        "--home",
        str(home),
        "--offline-request",
        str(tmp_path / "r.json"),
    )
    assert code == 1 and "no host key is installed" in err

    assert run_json(capsys, "host", "install-key", "--home", str(home), HOST_KEY.text)["installed"]
    req_file, resp_file = tmp_path / "req.json", tmp_path / "resp.json"
    run_json(capsys, "host", "activate", "--home", str(home), "--offline-request", str(req_file))
    req = HostActivationRequest.from_json(req_file.read_text())
    assert req.host_key == HOST_KEY.text and req.hostname == "kms1.corp.example"

    # A response signed by another vendor is refused and changes nothing.
    authority_sign(req_file, resp_file, vendor=SigningKey.from_seed(b"\x99" * 32))
    code, _, err = run(
        capsys, "host", "activate", "--home", str(home), "--offline-response", str(resp_file)
    )
    assert code == 1 and "vendor key" in err
    assert not (home / "host-license.bin").exists()

    authority_sign(req_file, resp_file)
    obj = run_json(
        capsys, "host", "activate", "--home", str(home), "--offline-response", str(resp_file)
    )
    assert obj["activated"] is True and obj["licensed_groups"] == ["server", "desktop"]

    st = run_json(capsys, "host", "status", "--home", str(home))
    assert st["activated"] is True and st["host_id"] == req.host_id.hex()
    assert st["thresholds"] == {"server": 5, "desktop": 25}
    assert st["port"] == 1688 and st["activation_interval_minutes"] == 120
    assert st["renewal_interval_minutes"] == 10080 and st["count_vms"] is True
    code, out, _ = run(capsys, "host", "status", "--home", str(home))
    assert code == 0 and "activated:   yes" in out


def test_set_validates_and_saves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "h"
    make_host_home(home)
    obj = run_json(
        capsys,
        "host",
        "set",
        "--home",
        str(home),
        "--activation-interval",
        "60",
        "--renewal-interval",
        "1440",
        "--port",
        "11688",
        "--count-vms",
        "no",
    )
    assert sorted(obj["changed"]) == [
        "activation_interval",
        "count_vms",
        "port",
        "renewal_interval",
    ]
    cfg = load_config(home)
    assert (cfg.activation_interval, cfg.renewal_interval, cfg.port, cfg.count_vms) == (
        60,
        1440,
        11688,
        False,
    )
    code, _, err = run(capsys, "host", "set", "--home", str(home), "--activation-interval", "14")
    assert code == 2 and "between 15 and 43200 minutes" in err
    code, _, err = run(capsys, "host", "set", "--home", str(home), "--renewal-interval", "43201")
    assert code == 2 and "43201" in err
    code, _, err = run(capsys, "host", "set", "--home", str(home))
    assert code == 2 and "nothing to set" in err
    assert load_config(home).activation_interval == 60


def test_events_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "h"
    profile, _, cfg = make_host_home(home)
    now = int(time.time())
    with HostStore.open(home) as store:
        core = load_core(home, cfg, store.recent_clients(0), now=now)
        sku = profile.catalog.sku("Professional").id
        records = []
        for i in range(30):
            req = wire.ActivateRequest(
                sku,
                uuid.UUID(int=i + 1),
                bytes(16),
                now,
                wire.LicenseState.GRACE,
                100,
                i % 2 == 0,
                f"pc-{i}",
            )
            d = core.handle(req, now=now, address="192.0.2.5")
            assert d.record is not None
            records.append(d.record)
        store.write_batch(records)
        store.add_event(now, "dns_publish_ok", "corp.example: SRV 0 0 1688 host.test")

    st = run_json(capsys, "host", "status", "--home", str(home))
    assert st["count"] == 30 and st["requests_by_result"] == {"count_too_low": 24, "ok": 6}

    ev = run_json(capsys, "host", "events", "--home", str(home), "--limit", "3")
    events = ev["events"]
    assert isinstance(events, list) and len(events) == 3
    assert events[-1]["kind"] == "dns_publish_ok"
    assert events[0]["kind"] == "request" and events[0]["workstation"] == "pc-28"
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
    assert run_json(capsys, "host", "events", "--home", str(home), "--since", since)["events"] == []
    code, _, err = run(capsys, "host", "events", "--home", str(home), "--since", "yesterday")
    assert code == 2 and "ISO 8601" in err

    act = run_json(capsys, "host", "report", "activity", "--home", str(home))
    assert act["rows"] == [
        {
            "day": time.strftime("%Y-%m-%d", time.gmtime(now)),
            "product": "Acme Desktop 2026 Professional",
            "activations": 6,
            "renewals": 0,
            "refusals": 24,
            "refused": {"count_too_low": 24},
        }
    ]
    code, text, _ = run(capsys, "host", "report", "activity", "--home", str(home))
    assert code == 0 and text.splitlines()[1].split()[-3:] == ["6", "0", "24"]
    lic = run_json(capsys, "host", "report", "licensing", "--home", str(home), "--limit", "5")
    summary = lic["summary"]
    assert isinstance(summary, dict)
    assert summary["known_clients"] == 30 and summary["licensed"] == 6
    assert summary["never_activated"] == 24
    clients = lic["clients"]
    assert isinstance(clients, list) and len(clients) == 5
    assert clients[0]["state"] == "licensed" and clients[0]["days_left"] in (179, 180)


def test_commands_on_a_missing_home_fail_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "host", "status", "--home", str(tmp_path / "nope"))
    assert code == 1 and "not a host home" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["init", "--fqdn", "bad name!!"], "is not a DNS label"),
        (["init", "--port", "0"], "is not a TCP port"),
        (["init", "--port", "70000"], "is not a TCP port"),
        (["set", "--fqdn", "a..b"], "is not a DNS label"),
        (["report", "activity", "--days", "-5"], "must be positive"),
        (["report", "licensing", "--limit", "0"], "must be positive"),
        (["events", "--limit", "-1"], "must be positive"),
    ],
)
def test_bad_settings_are_refused_when_given(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    profile_file: Path,
    argv: list[str],
    message: str,
) -> None:
    home = tmp_path / "h"
    extra = ["--profile", str(profile_file)] if argv[0] == "init" else []
    cmd = [*argv[:1], *argv[1:2]] if argv[0] == "report" else argv[:1]
    rest = argv[len(cmd):]
    code, out, err = run(capsys, "host", *cmd, "--home", str(home), *extra, *rest)
    assert code == 2 and message in err and out == ""
    assert not (home / "host.json").exists()


def test_status_text_summarises_dns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "h"
    make_host_home(home)
    code, out, _ = run(capsys, "host", "status", "--home", str(home))
    assert code == 0 and "dns:         publishing off" in out and "{" not in out


def test_set_connection_limits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "h"
    make_host_home(home)
    obj = run_json(capsys, "host", "set", "--home", str(home), "--max-connections", "50",
                   "--max-connections-per-address", "0", "--read-timeout", "2.5")  # fmt: skip
    assert obj["changed"] == ["max_connections", "max_connections_per_address", "read_timeout"]
    cfg = load_config(home)
    assert (cfg.max_connections, cfg.max_connections_per_address, cfg.read_timeout) == (50, 0, 2.5)
    code, _, err = run(capsys, "host", "set", "--home", str(home), "--read-timeout", "0")
    assert code == 2 and "read_timeout must be" in err
    assert load_config(home).read_timeout == 2.5
