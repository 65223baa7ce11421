"""The least-privilege BIND ``update-policy`` from docs/operations.md, on a real ``named``.

The host's key may change the ``_volact._tcp.<zone>`` SRV RRset and the A/AAAA
records of its own name, nothing else: publishing under another name is refused
whole (RFC 2136 updates are atomic), and the host reports why.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from services import Bind9, ServiceMissing
from volact.host.config import HostConfig
from volact.host.dns import files as dnsfiles
from volact.host.dns import publisher
from volact.host.dns.outcomes import FailureKind
from volact.host.dns.servers import ServerAddress
from volact.host.dns.settings import DnsSettings
from volact.host.dns.state import STATE_FILE
from volact.host.home import save_config

ZONE = "policy.example"


def _host_json(home: Path) -> None:
    """A host.json with a fresh host id: what the ownership markers carry."""
    save_config(home, HostConfig(host_id=secrets.token_bytes(8)))


class LeastPrivilegeBind9(Bind9):
    """The fixture's BIND with the docs' policy: A/AAAA only at ``host1.<zone>``."""

    def _config(self) -> str:
        text = super()._config()
        broad = f'grant "{self.tsig_key_name}" zonesub A AAAA;'
        narrow = f'grant "{self.tsig_key_name}" name host1.{ZONE}. A AAAA;'
        assert broad in text
        return text.replace(broad, narrow)


@pytest.fixture(scope="module")
def strict() -> Iterator[Bind9]:
    try:
        server = LeastPrivilegeBind9(zones=(ZONE,), tsig_key_name="host1.policy.example")
    except ServiceMissing as exc:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{exc} (CI=true: the CI host must provide it)")
        pytest.skip(f"{exc} (or run `make deps` as root)")
    with server:
        yield server


def _home(tmp_path: Path, server: Bind9) -> Path:
    home = tmp_path / "h"
    home.mkdir()
    _host_json(home)
    key = server.write_key_file(home / "host1.key")
    settings = DnsSettings(
        enabled=True, servers=(ServerAddress("127.0.0.1", server.port),), tsig_key_file=str(key)
    )
    dnsfiles.save_settings(home, settings)
    return home


def test_own_name_and_srv_are_allowed(strict: Bind9, tmp_path: Path) -> None:
    home = _home(tmp_path, strict)
    fqdn = f"host1.{ZONE}"
    outcomes = publisher.run_once(
        home, action="publish", fqdn=fqdn, port=1688, addresses=("127.0.0.1", "::1")
    )
    assert [o.ok for o in outcomes] == [True], outcomes
    assert [rr.to_text() for rr in strict.query(fqdn, "AAAA").answer[0]] == ["::1"]
    outcomes = publisher.run_once(
        home, action="unpublish", fqdn=fqdn, port=1688, addresses=("127.0.0.1", "::1")
    )
    assert [o.ok for o in outcomes] == [True]
    assert not strict.query(f"_volact._tcp.{ZONE}", "SRV").answer


def test_another_name_is_refused_whole(strict: Bind9, tmp_path: Path) -> None:
    home = _home(tmp_path, strict)
    fqdn = f"host2.{ZONE}"
    outcomes = publisher.run_once(
        home, action="publish", fqdn=fqdn, port=1688, addresses=("127.0.0.9",)
    )
    assert [(o.ok, o.kind) for o in outcomes] == [(False, FailureKind.REFUSED)]
    assert "update policy" in outcomes[0].detail
    assert not strict.query(fqdn, "A").answer
    assert not strict.query(f"_volact._tcp.{ZONE}", "SRV").answer  # nothing half-done


def test_old_name_no_longer_granted_does_not_block_publishing(
    strict: Bind9, tmp_path: Path
) -> None:
    # The host was host9 (granted then), is host1 now, and the policy was narrowed to
    # host1: its old A record can no longer be deleted with this key. That refusal
    # must not refuse the new records too; the old one stays on record, to retry.
    home = _home(tmp_path, strict)
    old, fqdn = f"host9.{ZONE}", f"host1.{ZONE}"
    upd = strict.update(ZONE)
    upd.add(f"_volact._tcp.{ZONE}.", 3600, "SRV", f"0 0 1688 {old}.")
    assert strict.send(upd).rcode() == 0
    state = {
        "fqdn": old,
        "domains": {
            ZONE: {
                "published": True,
                "fqdn": old,
                "records": [
                    {"name": f"_volact._tcp.{ZONE}", "type": "SRV", "rdata": f"0 0 1688 {old}."},
                    {"name": old, "type": "A", "rdata": "127.0.0.9"},
                ],
            }
        },
    }
    (home / STATE_FILE).write_text(json.dumps(state))

    outcomes = publisher.run_once(
        home, action="publish", fqdn=fqdn, port=1688, addresses=("127.0.0.1",)
    )
    assert [o.ok for o in outcomes] == [True], outcomes
    assert f"old records under {old} not removed: refused (REFUSED)" in outcomes[0].detail
    srv = {
        rd.to_text() for rrset in strict.query(f"_volact._tcp.{ZONE}", "SRV").answer for rd in rrset
    }
    assert srv == {f"0 0 1688 {fqdn}."}  # the old SRV went: the label is granted
    kept = json.loads((home / STATE_FILE).read_text())["domains"][ZONE]["records"]
    assert {"name": old, "type": "A", "rdata": "127.0.0.9"} in kept

    outcomes = publisher.run_once(home, action="unpublish", fqdn=fqdn, port=1688, addresses=())
    assert [o.ok for o in outcomes] == [True]
    assert not strict.query(f"_volact._tcp.{ZONE}", "SRV").answer
    assert not strict.query(fqdn, "A").answer
