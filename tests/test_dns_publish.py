"""Publishing against a real BIND 9: replace only one's own SRV record, refusals, outages.

Every test uses host names of its own (``<test>-<random>.corp.example``) because the
session's ``named`` and its zones are shared; assertions look only at those names.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import dns.rdatatype
import pytest

from services import Bind9
from volact.client.discovery import lookup_srv, resolve_host
from volact.client.srv import HostAddress, SrvRecord
from volact.host.config import HostConfig
from volact.host.dns import files as dnsfiles
from volact.host.dns import publisher
from volact.host.dns.outcomes import FailureKind, Outcome
from volact.host.dns.servers import ServerAddress
from volact.host.dns.settings import DnsSettings, PublishDomain
from volact.host.dns.state import STATE_FILE
from volact.host.dns.status import status as dns_status
from volact.host.home import load_config, save_config

LABEL = "_volact._tcp"


def _host_json(home: Path) -> None:
    """A host.json with a fresh host id: what the ownership markers carry."""
    save_config(home, HostConfig(host_id=secrets.token_bytes(8)))


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _srv(bind9: Bind9, zone: str, *targets: str) -> set[str]:
    """SRV rdatas at the zone's label whose target is one of ``targets`` (a real query)."""
    reply = bind9.query(f"{LABEL}.{zone}", "SRV")
    wanted = {t.rstrip(".") for t in targets}
    return {
        rd.to_text().rstrip(".")
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.SRV
        for rd in rrset
        if rd.target.to_text(omit_final_dot=True) in wanted  # type: ignore[attr-defined]
    }


def _home(
    tmp_path: Path,
    bind9: Bind9,
    name: str,
    *,
    key: str = "good",
    **settings: object,
) -> Path:
    home = tmp_path / name
    home.mkdir()
    _host_json(home)
    key_file: str | None = None
    if key == "good":
        key_file = str(bind9.write_key_file(home / "tsig.key"))
    elif key == "wrong-secret":
        wrong = base64.b64encode(secrets.token_bytes(32)).decode()
        key_file = str(home / "tsig.key")
        Path(key_file).write_text(
            f'key "{bind9.tsig_key_name}" {{ algorithm hmac-sha256; secret "{wrong}"; }};\n'
        )
    elif key == "unknown-name":
        key_file = str(home / "tsig.key")
        Path(key_file).write_text(
            'key "nobody-knows-me" { algorithm hmac-sha256; '
            f'secret "{bind9.tsig_secret_b64}"; }};\n'
        )
    base = DnsSettings(
        enabled=True,
        servers=(ServerAddress("127.0.0.1", bind9.port),),
        tsig_key_file=key_file,
    )
    dnsfiles.save_settings(home, DnsSettings.from_json({**base.to_json(), **settings}))
    return home


class Events(list[tuple[str, str]]):
    def __call__(self, kind: str, message: str) -> None:
        self.append((kind, message))

    def kinds(self) -> list[str]:
        return [k for k, _ in self]


def _run_once(home: Path, **kwargs: Any) -> list[Outcome]:
    """``run_once`` on a host whose ``host.json`` names the FQDN it publishes."""
    save_config(home, replace(load_config(home), fqdn=kwargs["fqdn"]))  # `host set --fqdn`
    return publisher.run_once(home, **kwargs)


def _publish(home: Path, fqdn: str, port: int, addresses: tuple[str, ...] = ()) -> Events:
    events = Events()
    _run_once(
        home, action="publish", fqdn=fqdn, port=port, addresses=addresses, record_event=events
    )
    return events


def test_two_hosts_share_a_zone_unpublish_and_port_change(bind9: Bind9, tmp_path: Path) -> None:
    zone = "corp.example"
    h1, h2 = f"{_name('h1')}.{zone}", f"{_name('h2')}.{zone}"
    home1 = _home(tmp_path, bind9, "h1")
    home2 = _home(tmp_path, bind9, "h2")

    assert _publish(home1, h1, 1688, ("127.0.0.1",)).kinds() == ["dns_publish_ok"]
    assert _publish(home2, h2, 1688, ("127.0.0.2", "::1")).kinds() == ["dns_publish_ok"]
    assert _srv(bind9, zone, h1, h2) == {f"0 0 1688 {h1}", f"0 0 1688 {h2}"}
    assert resolve_host(h2, nameservers=[HostAddress("127.0.0.1", bind9.port)]) == [
        "::1",
        "127.0.0.2",
    ]

    # A port change replaces h1's record instead of adding a second one.
    _publish(home1, h1, 1700, ("127.0.0.1",))
    assert _srv(bind9, zone, h1, h2) == {f"0 0 1700 {h1}", f"0 0 1688 {h2}"}
    # Republishing the same thing leaves exactly one record.
    _publish(home1, h1, 1700, ("127.0.0.1",))
    assert _srv(bind9, zone, h1) == {f"0 0 1700 {h1}"}

    events = Events()
    _run_once(
        home1,
        action="unpublish",
        fqdn=h1,
        port=1700,
        addresses=("127.0.0.1",),
        record_event=events,
    )
    assert events.kinds() == ["dns_unpublish_ok"]
    assert _srv(bind9, zone, h1, h2) == {f"0 0 1688 {h2}"}
    assert not bind9.query(h1, "A").answer  # its address went with it
    assert bind9.query(h2, "A").answer  # the other host's did not

    _run_once(home2, action="unpublish", fqdn=h2, port=1688, addresses=("127.0.0.2",))
    assert _srv(bind9, zone, h1, h2) == set()


def test_one_host_into_two_zones_with_own_priority_and_weight(bind9: Bind9, tmp_path: Path) -> None:
    fqdn = f"{_name('multi')}.corp.example"
    home = _home(
        tmp_path,
        bind9,
        "multi",
        priority=1,
        weight=5,
        publish=[{"domain": "branch.example", "priority": 10, "weight": 20}],
    )
    events = _publish(home, fqdn, 1688)
    assert events.kinds() == ["dns_publish_ok", "dns_publish_ok"]
    assert [m.split(":")[0] for _, m in events] == ["corp.example", "branch.example"]

    ns = [HostAddress("127.0.0.1", bind9.port)]
    corp = [r for r in lookup_srv(f"{LABEL}.corp.example", nameservers=ns) if r.target == fqdn]
    branch = [r for r in lookup_srv(f"{LABEL}.branch.example.", nameservers=ns) if r.target == fqdn]
    assert corp == [SrvRecord(1, 5, 1688, fqdn)]
    assert branch == [SrvRecord(10, 20, 1688, fqdn)]
    # The host's name is in corp.example only: no A record lands in branch.example.
    assert not bind9.query(f"{fqdn.split('.')[0]}.branch.example", "A").answer

    st = dns_status(home)
    assert [(d["domain"], d["published"]) for d in st["domains"]] == [
        ("corp.example", True),
        ("branch.example", True),
    ]
    _run_once(home, action="unpublish", fqdn=fqdn, port=1688, addresses=())
    assert _srv(bind9, "corp.example", fqdn) == _srv(bind9, "branch.example", fqdn) == set()
    assert [d["published"] for d in dns_status(home)["domains"]] == [False, False]


def _rdatas(bind9: Bind9, name: str, rdtype: str) -> set[str]:
    return {rd.to_text() for rrset in bind9.query(name, rdtype).answer for rd in rrset}


def _admin_adds(bind9: Bind9, zone: str, *records: tuple[str, str, str]) -> None:
    """Records an administrator maintains by hand (sent with the zone's key)."""
    upd = bind9.update(zone)
    for name, rdtype, rdata in records:
        upd.add(name + ".", 3600, rdtype, rdata)
    assert bind9.send(upd).rcode() == 0


def test_admin_address_records_survive_publish_and_unpublish(bind9: Bind9, tmp_path: Path) -> None:
    # The zone holds `host AAAA 2001:db8::1` and `host A 192.0.2.99` kept by an
    # admin; the host publishes only `A 192.0.2.10`. Neither publish nor unpublish
    # may touch the admin's records.
    zone = "corp.example"
    fqdn = f"{_name('admin')}.{zone}"
    _admin_adds(bind9, zone, (fqdn, "AAAA", "2001:db8::1"), (fqdn, "A", "192.0.2.99"))
    home = _home(tmp_path, bind9, "admin", addresses=["192.0.2.10"])

    assert _publish(home, fqdn, 1688, ("127.0.0.1",)).kinds() == ["dns_publish_ok"]
    assert _rdatas(bind9, fqdn, "AAAA") == {"2001:db8::1"}
    assert _rdatas(bind9, fqdn, "A") == {"192.0.2.99", "192.0.2.10"}

    # Republishing with another address replaces only the one it published.
    settings = dnsfiles.load_settings(home)
    dnsfiles.save_settings(home, replace(settings, addresses=("192.0.2.11",)))
    assert _publish(home, fqdn, 1688).kinds() == ["dns_publish_ok"]
    assert _rdatas(bind9, fqdn, "A") == {"192.0.2.99", "192.0.2.11"}
    assert _rdatas(bind9, fqdn, "AAAA") == {"2001:db8::1"}

    events = Events()
    _run_once(
        home, action="unpublish", fqdn=fqdn, port=1688, addresses=(), record_event=events
    )
    assert events.kinds() == ["dns_unpublish_ok"]
    assert _srv(bind9, zone, fqdn) == set()
    assert _rdatas(bind9, fqdn, "A") == {"192.0.2.99"}
    assert _rdatas(bind9, fqdn, "AAAA") == {"2001:db8::1"}
    state = json.loads((home / STATE_FILE).read_text())["domains"][zone]
    assert state["published"] is False and state["records"] == []


def test_wildcard_listener_after_explicit_address_removes_only_its_own(
    bind9: Bind9, tmp_path: Path
) -> None:
    zone = "corp.example"
    fqdn = f"{_name('wild')}.{zone}"
    _admin_adds(bind9, zone, (fqdn, "A", "192.0.2.99"))
    home = _home(tmp_path, bind9, "wild", addresses=["192.0.2.10"])
    _publish(home, fqdn, 1688)
    assert _rdatas(bind9, fqdn, "A") == {"192.0.2.99", "192.0.2.10"}
    # Back to the listen addresses, which are a wildcard: nothing of its own to add.
    dnsfiles.save_settings(home, replace(dnsfiles.load_settings(home), addresses=()))
    _publish(home, fqdn, 1688, ("0.0.0.0",))
    assert _rdatas(bind9, fqdn, "A") == {"192.0.2.99"}
    assert _srv(bind9, zone, fqdn) == {f"0 0 1688 {fqdn}"}
    _run_once(home, action="unpublish", fqdn=fqdn, port=1688, addresses=())
    assert _rdatas(bind9, fqdn, "A") == {"192.0.2.99"}


def test_fqdn_change_removes_the_old_records(bind9: Bind9, tmp_path: Path) -> None:
    zone = "corp.example"
    old, new = f"{_name('old')}.{zone}", f"{_name('new')}.{zone}"
    other = f"{_name('other')}.{zone}"
    home = _home(tmp_path, bind9, "renamed", publish=[{"domain": "branch.example"}])
    other_home = _home(tmp_path, bind9, "other")
    _publish(other_home, other, 1688, ("127.0.0.3",))

    assert _publish(home, old, 1688, ("127.0.0.1", "::1")).kinds() == ["dns_publish_ok"] * 2
    assert _srv(bind9, zone, old) == {f"0 0 1688 {old}"}
    assert _srv(bind9, "branch.example", old) == {f"0 0 1688 {old}"}
    assert _rdatas(bind9, old, "A") == {"127.0.0.1"}

    # The host is renamed (host set --fqdn, or host dns --fqdn) and publishes again.
    assert _publish(home, new, 1688, ("127.0.0.1", "::1")).kinds() == ["dns_publish_ok"] * 2
    assert _srv(bind9, zone, old, new, other) == {f"0 0 1688 {new}", f"0 0 1688 {other}"}
    assert _srv(bind9, "branch.example", old, new) == {f"0 0 1688 {new}"}
    assert not bind9.query(old, "A").answer and not bind9.query(old, "AAAA").answer
    assert _rdatas(bind9, new, "A") == {"127.0.0.1"}
    assert _rdatas(bind9, other, "A") == {"127.0.0.3"}

    _run_once(home, action="unpublish", fqdn=new, port=1688, addresses=())
    assert _srv(bind9, zone, old, new, other) == {f"0 0 1688 {other}"}
    assert not bind9.query(new, "A").answer
    _run_once(other_home, action="unpublish", fqdn=other, port=1688, addresses=())


def test_fqdn_change_with_state_from_before_rdatas_were_recorded(
    bind9: Bind9, tmp_path: Path
) -> None:
    # dns-state.json as earlier versions wrote it: the FQDN on top, addresses per domain.
    zone = "corp.example"
    old, new = f"{_name('legacy-old')}.{zone}", f"{_name('legacy-new')}.{zone}"
    home = _home(tmp_path, bind9, "legacy")
    upd = bind9.update(zone)
    upd.add(f"{LABEL}.{zone}.", 3600, "SRV", f"0 0 1688 {old}.")
    upd.add(old + ".", 3600, "A", "127.0.0.1")
    assert bind9.send(upd).rcode() == 0
    legacy = {"fqdn": old, "domains": {zone: {"published": True, "addresses": ["127.0.0.1"]}}}
    (home / STATE_FILE).write_text(json.dumps(legacy))

    assert _publish(home, new, 1688, ("127.0.0.1",)).kinds() == ["dns_publish_ok"]
    assert _srv(bind9, zone, old, new) == {f"0 0 1688 {new}"}
    assert not bind9.query(old, "A").answer
    _run_once(home, action="unpublish", fqdn=new, port=1688, addresses=())
    assert _srv(bind9, zone, new) == set() and not bind9.query(new, "A").answer


def test_failed_publish_keeps_the_record_of_what_was_published(
    bind9: Bind9, tmp_path: Path
) -> None:
    zone = "corp.example"
    old, new = f"{_name('keep-old')}.{zone}", f"{_name('keep-new')}.{zone}"
    home = _home(tmp_path, bind9, "keep")
    _publish(home, old, 1688, ("127.0.0.1",))
    bind9.stop()
    try:
        outcomes = _run_once(
            home, action="publish", fqdn=new, port=1688, addresses=("127.0.0.1",), timeout=2.0
        )
    finally:
        bind9.start()
    assert [o.ok for o in outcomes] == [False]
    # The failure under the new name did not make it forget the old one.
    assert _publish(home, new, 1688, ("127.0.0.1",)).kinds() == ["dns_publish_ok"]
    assert _srv(bind9, zone, old, new) == {f"0 0 1688 {new}"}
    assert not bind9.query(old, "A").answer
    _run_once(home, action="unpublish", fqdn=new, port=1688, addresses=())


@pytest.mark.parametrize(
    ("key", "kind", "reason"),
    [
        ("wrong-secret", FailureKind.BADSIG, "BADSIG"),
        ("unknown-name", FailureKind.BADKEY, "BADKEY"),
        ("none", FailureKind.REFUSED, "not signed"),
    ],
)
def test_refused_updates_are_events_with_the_reason(
    bind9: Bind9, tmp_path: Path, key: str, kind: FailureKind, reason: str
) -> None:
    fqdn = f"{_name('forged')}.corp.example"
    home = _home(tmp_path, bind9, "forged", key=key)
    events = Events()
    outcomes = _run_once(
        home, action="publish", fqdn=fqdn, port=1688, addresses=(), record_event=events
    )
    assert [(o.ok, o.kind) for o in outcomes] == [(False, kind)]
    assert events.kinds() == ["dns_publish_failed"]
    assert events[0][1].startswith("corp.example: ")
    assert reason in events[0][1]
    assert _srv(bind9, "corp.example", fqdn) == set()
    st = dns_status(home)
    assert st["domains"][0]["failures"] == 1
    assert reason in st["domains"][0]["last_error"]
    # The secret is never shown, whichever key was used.
    secret = bind9.tsig_secret_b64
    assert secret not in json.dumps(st)
    assert secret not in repr(outcomes) + repr(events)


def test_policy_refusal_outside_the_granted_records(bind9: Bind9, tmp_path: Path) -> None:
    # The key may change A/AAAA only inside the zone: a host named in another zone,
    # publishing a label the policy does not grant, is refused (REFUSED), not crashed.
    fqdn = f"{_name('odd')}.corp.example"
    home = _home(tmp_path, bind9, "odd", label="_other._tcp")
    outcomes = _run_once(home, action="publish", fqdn=fqdn, port=1688, addresses=())
    assert [(o.ok, o.kind) for o in outcomes] == [(False, FailureKind.REFUSED)]
    assert "update policy" in outcomes[0].detail


def test_server_down_is_a_failure_with_a_reason(bind9: Bind9, tmp_path: Path) -> None:
    fqdn = f"{_name('down')}.corp.example"
    home = _home(tmp_path, bind9, "down")
    bind9.stop()
    try:
        outcomes = _run_once(
            home, action="publish", fqdn=fqdn, port=1688, addresses=(), timeout=2.0
        )
    finally:
        bind9.start()
    assert [(o.ok, o.kind) for o in outcomes] == [(False, FailureKind.UNREACHABLE)]
    assert "connection refused" in outcomes[0].detail


def test_server_that_never_answers_is_a_timeout(tmp_path: Path) -> None:
    # A socket that listens but never accepts: TCP connects, no DNS answer comes.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        home = tmp_path / "silent"
        home.mkdir()
        _host_json(home)
        dnsfiles.save_settings(
            home, DnsSettings(enabled=True, servers=(ServerAddress("127.0.0.1", port),))
        )
        events = Events()
        outcomes = _run_once(
            home,
            action="publish",
            fqdn="silent.corp.example",
            port=1688,
            addresses=(),
            record_event=events,
            timeout=1.0,
        )
    assert [(o.ok, o.kind) for o in outcomes] == [(False, FailureKind.TIMEOUT)]
    assert events.kinds() == ["dns_publish_failed"]
    assert "timeout: no answer within 1 s" in events[0][1]


def test_second_server_is_tried_when_the_first_does_not_answer(
    bind9: Bind9, tmp_path: Path
) -> None:
    fqdn = f"{_name('failover')}.corp.example"
    home = _home(tmp_path, bind9, "failover")
    settings = dnsfiles.load_settings(home)
    dead = ServerAddress("127.0.0.1", 9)  # discard port: nothing listens there
    dnsfiles.save_settings(
        home,
        DnsSettings.from_json(
            {**settings.to_json(), "servers": [str(dead), f"127.0.0.1:{bind9.port}"]}
        ),
    )
    outcomes = _run_once(home, action="publish", fqdn=fqdn, port=1688, addresses=())
    assert [o.ok for o in outcomes] == [True]
    assert outcomes[0].server == f"127.0.0.1:{bind9.port}"
    _run_once(home, action="unpublish", fqdn=fqdn, port=1688, addresses=())


def test_missing_key_file_is_a_config_failure(bind9: Bind9, tmp_path: Path) -> None:
    home = _home(tmp_path, bind9, "nokey")
    (home / "tsig.key").unlink()
    outcomes = _run_once(
        home, action="publish", fqdn="nokey.corp.example", port=1, addresses=()
    )
    assert [(o.ok, o.kind) for o in outcomes] == [(False, FailureKind.CONFIG)]
    assert "does not exist" in outcomes[0].detail


# ------------------------------------------------------------------ the loop


@contextlib.contextmanager
def _loop_thread(home: Path, fqdn: str, port: int, events: Events) -> Iterator[asyncio.Event]:
    """Run ``publish_loop`` in a thread of its own; stop it and join on exit."""
    save_config(home, replace(load_config(home), fqdn=fqdn))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    result: list[BaseException | None] = []

    def run() -> None:
        try:
            loop.run_until_complete(
                publisher.publish_loop(
                    home,
                    fqdn=fqdn,
                    port=port,
                    addresses=("0.0.0.0:1688", "127.0.0.1:1688"),
                    record_event=events,
                    stop=stop,
                    timeout=2.0,
                )
            )
            result.append(None)
        except BaseException as exc:  # surfaced below: the loop must never raise
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()
    assert not thread.is_alive()
    assert result == [None]


def _wait_for(predicate: object, what: str, seconds: float = 30.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


def test_loop_survives_bind_down_then_publishes_when_it_is_back(
    bind9: Bind9, tmp_path: Path
) -> None:
    fqdn = f"{_name('outage')}.corp.example"
    home = _home(tmp_path, bind9, "outage", retry_initial=1, retry_max=2)
    events = Events()
    bind9.stop()
    try:
        with _loop_thread(home, fqdn, 1688, events):
            _wait_for(lambda: events.kinds().count("dns_publish_failed") >= 2, "two failures")
            assert "connection refused" in events[0][1]
            assert "retry in 1 s" in events[0][1] and "retry in 2 s" in events[1][1]
            assert _srv_state(home)["failures"] >= 2
            bind9.start()
            _wait_for(lambda: "dns_publish_ok" in events.kinds(), "a success")
            assert _srv(bind9, "corp.example", fqdn) == {f"0 0 1688 {fqdn}"}
            # 127.0.0.1 from the listen addresses; the wildcard was skipped.
            assert [rr.to_text() for rr in bind9.query(fqdn, "A").answer[0]] == ["127.0.0.1"]
    finally:
        bind9.start()
    st = _srv_state(home)
    assert st["failures"] == 0 and st["published"] is True and st["last_error"] is None
    _run_once(home, action="unpublish", fqdn=fqdn, port=1688, addresses=("127.0.0.1",))


def _srv_state(home: Path) -> dict[str, object]:
    domains: list[dict[str, object]] = dns_status(home)["domains"]
    return domains[0]


def test_loop_returns_at_once_when_disabled_or_unconfigured(tmp_path: Path) -> None:
    async def run(home: Path) -> Events:
        events = Events()
        stop = asyncio.Event()
        await asyncio.wait_for(
            publisher.publish_loop(
                home, fqdn="h.corp.example", port=1, addresses=(), record_event=events, stop=stop
            ),
            timeout=10,
        )
        return events

    home = tmp_path / "h"
    home.mkdir()
    _host_json(home)
    assert asyncio.run(run(home)) == []  # no dns.json at all
    dnsfiles.save_settings(home, DnsSettings(servers=(ServerAddress("127.0.0.1", 9),)))
    assert asyncio.run(run(home)) == []  # configured but disabled
    (home / "dns.json").write_text("{not json")
    events = asyncio.run(run(home))  # broken settings: one event, no exception
    assert events.kinds() == ["dns_publish_failed"]
    assert "not valid JSON" in events[0][1]


def test_settings_domains_with_publish_list(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    _host_json(home)
    s = DnsSettings(publish=(PublishDomain("branch.example", 3, 4),))
    dnsfiles.save_settings(home, s)
    assert dnsfiles.load_settings(home) == s


# ------------------------------------------------------------------ two hosts, one name


def _markers(bind9: Bind9, zone: str) -> dict[str, str]:
    """The ownership markers at the zone's SRV name: target -> host id (a real query)."""
    out: dict[str, str] = {}
    for rrset in bind9.query(f"{LABEL}.{zone}", "TXT").answer:
        for rd in rrset:
            strings = [s.decode() for s in rd.strings]  # type: ignore[attr-defined]
            if strings[0] == "volact-owner":
                assert strings[2] not in out, "two owners of one name"
                out[strings[2]] = strings[1]
    return out


def _id(home: Path) -> str:
    return load_config(home).host_id.hex()


def test_a_replacement_host_takes_over_an_fqdn_and_the_old_one_cannot_remove_it(
    bind9: Bind9, tmp_path: Path
) -> None:
    zone = "corp.example"
    fqdn = f"{_name('kms')}.{zone}"
    old, new = _home(tmp_path, bind9, "old"), _home(tmp_path, bind9, "new")
    assert _publish(old, fqdn, 1688, ("127.0.0.1",)).kinds() == ["dns_publish_ok"]
    assert _markers(bind9, zone)[fqdn] == _id(old)

    # The replacement is refused at first: the name is another host id's.
    events = _publish(new, fqdn, 1688, ("127.0.0.2",))
    assert events.kinds() == ["dns_publish_failed"]
    assert f"owned by host {_id(old)}" in events[0][1] and "--take-over" in events[0][1]
    assert _rdatas(bind9, fqdn, "A") == {"127.0.0.1"}  # nothing changed

    # Told to take over, it replaces the old host's records, marker and address.
    events = Events()
    outcomes = _run_once(new, action="publish", fqdn=fqdn, port=1688, record_event=events,
                         addresses=("127.0.0.2",), take_over=True)  # fmt: skip
    assert [o.ok for o in outcomes] == [True]
    assert f"took the name over from host {_id(old)}" in outcomes[0].detail
    assert events[1] == (
        "dns_name_taken_over", f"{zone}: {fqdn} taken over from host {_id(old)}"
    )
    assert _srv(bind9, zone, fqdn) == {f"0 0 1688 {fqdn}"}
    assert _rdatas(bind9, fqdn, "A") == {"127.0.0.2"}
    assert _markers(bind9, zone)[fqdn] == _id(new)

    # The old host is decommissioned: its unpublish and its republish leave the
    # new host's identical SRV rdata and its address alone.
    events = Events()
    _run_once(old, action="unpublish", fqdn=fqdn, port=1688, addresses=(), record_event=events)
    assert events.kinds() == ["dns_unpublish_ok"], events
    assert f"left records owned by another host: {fqdn} (now host {_id(new)})" in events[0][1]
    assert _srv(bind9, zone, fqdn) == {f"0 0 1688 {fqdn}"}
    assert _rdatas(bind9, fqdn, "A") == {"127.0.0.2"}
    assert _publish(old, fqdn, 1688, ("127.0.0.1",)).kinds() == ["dns_publish_failed"]
    assert _srv(bind9, zone, fqdn) == {f"0 0 1688 {fqdn}"}
    assert _markers(bind9, zone)[fqdn] == _id(new)

    _run_once(new, action="unpublish", fqdn=fqdn, port=1688, addresses=())
    assert _srv(bind9, zone, fqdn) == set() and not bind9.query(fqdn, "A").answer
    assert fqdn not in _markers(bind9, zone)


def test_a_renamed_host_leaves_its_old_name_to_the_host_that_took_it(
    bind9: Bind9, tmp_path: Path
) -> None:
    zone = "corp.example"
    first, second = f"{_name('first')}.{zone}", f"{_name('second')}.{zone}"
    a, b = _home(tmp_path, bind9, "a"), _home(tmp_path, bind9, "b")
    assert _publish(a, first, 1688, ("127.0.0.1",)).kinds() == ["dns_publish_ok"]

    # Host a is renamed to `second` but has not republished yet; host b is set up
    # under a's old name and takes it over (the administrator says so).
    outcomes = _run_once(b, action="publish", fqdn=first, port=1688,
                         addresses=("127.0.0.2",), take_over=True)  # fmt: skip
    assert [o.ok for o in outcomes] == [True]

    # a republishes under its new name: what it recorded under `first` is b's now.
    events = _publish(a, second, 1688, ("127.0.0.1",))
    assert events.kinds() == ["dns_publish_ok"]
    assert f"{first} (now host {_id(b)})" in events[0][1]
    assert _srv(bind9, zone, first, second) == {f"0 0 1688 {first}", f"0 0 1688 {second}"}
    assert _rdatas(bind9, first, "A") == {"127.0.0.2"}
    assert _rdatas(bind9, second, "A") == {"127.0.0.1"}
    marks = _markers(bind9, zone)
    assert (marks[first], marks[second]) == (_id(b), _id(a))

    _run_once(a, action="unpublish", fqdn=second, port=1688, addresses=())
    assert _srv(bind9, zone, first, second) == {f"0 0 1688 {first}"}
    assert _rdatas(bind9, first, "A") == {"127.0.0.2"}
    _run_once(b, action="unpublish", fqdn=first, port=1688, addresses=())
    assert _srv(bind9, zone, first, second) == set()
    assert not ({first, second} & set(_markers(bind9, zone)))


def test_a_briefly_wrong_fqdn_cannot_touch_the_host_that_owns_that_name(
    bind9: Bind9, tmp_path: Path
) -> None:
    zone = "corp.example"
    mine, theirs = f"{_name('mine')}.{zone}", f"{_name('theirs')}.{zone}"
    me, other = _home(tmp_path, bind9, "me"), _home(tmp_path, bind9, "other")
    assert _publish(other, theirs, 1688, ("127.0.0.3",)).kinds() == ["dns_publish_ok"]
    assert _publish(me, mine, 1688, ("127.0.0.1",)).kinds() == ["dns_publish_ok"]

    # A typo gives this host the other's name: refused whole, nothing changes.
    events = _publish(me, theirs, 1688, ("127.0.0.1",))
    assert events.kinds() == ["dns_publish_failed"]
    assert f"owned by host {_id(other)}" in events[0][1]
    assert _srv(bind9, zone, mine, theirs) == {f"0 0 1688 {mine}", f"0 0 1688 {theirs}"}
    assert _rdatas(bind9, theirs, "A") == {"127.0.0.3"}

    # Fixed: publishing under the right name again changes nothing of the other's.
    assert _publish(me, mine, 1688, ("127.0.0.1",)).kinds() == ["dns_publish_ok"]
    _run_once(me, action="unpublish", fqdn=mine, port=1688, addresses=())
    assert _srv(bind9, zone, mine, theirs) == {f"0 0 1688 {theirs}"}
    assert _rdatas(bind9, theirs, "A") == {"127.0.0.3"}
    assert _markers(bind9, zone).get(theirs) == _id(other)
    _run_once(other, action="unpublish", fqdn=theirs, port=1688, addresses=())


def test_racing_hosts_cannot_both_claim_a_name(bind9: Bind9, tmp_path: Path) -> None:
    # Compare before changing: an update made from a stale view of the markers fails
    # whole (RFC 2136 prerequisite), so the second claimant cannot overwrite the first.
    from volact.host.dns.ownership import Marker
    from volact.host.dns.plans import Ownership, plan_publish
    from volact.host.dns.updates import _send_update

    zone = "corp.example"
    fqdn = f"{_name('race')}.{zone}"
    a, b = _home(tmp_path, bind9, "ra"), _home(tmp_path, bind9, "rb")
    seen = tuple(
        rd.to_text() for rrset in bind9.query(f"{LABEL}.{zone}", "TXT").answer for rd in rrset
    )
    markers = tuple(
        m for rrset in bind9.query(f"{LABEL}.{zone}", "TXT").answer for rd in rrset
        if (m := Marker.from_strings(rd.strings)) is not None  # type: ignore[attr-defined]
    )  # fmt: skip
    stale = plan_publish(zone=zone, label=LABEL, fqdn=fqdn, port=1688, priority=0, weight=0,
                         ttl=60, addresses=("127.0.0.9",), existing_srv=(),
                         ownership=Ownership(_id(b), markers, seen))  # fmt: skip
    assert _publish(a, fqdn, 1688, ("127.0.0.1",)).kinds() == ["dns_publish_ok"]
    key = dnsfiles.read_key_file(dnsfiles.load_settings(b).tsig_key_file or "")
    with pytest.raises(Exception, match=r"NXRRSET|YXRRSET"):
        _send_update(stale, ServerAddress("127.0.0.1", bind9.port), key, 5.0)
    assert _markers(bind9, zone)[fqdn] == _id(a)
    assert _rdatas(bind9, fqdn, "A") == {"127.0.0.1"}
    _run_once(a, action="unpublish", fqdn=fqdn, port=1688, addresses=())


def test_hosts_publishing_other_names_at_once_all_succeed(bind9: Bind9, tmp_path: Path) -> None:
    # The prerequisite covers every marker in the zone, so simultaneous publishers of
    # different names conflict; each reads the others' markers again and succeeds.
    zone = "corp.example"
    homes = [_home(tmp_path, bind9, f"many{i}") for i in range(4)]
    names = [f"{_name(f'many{i}')}.{zone}" for i in range(4)]
    for home, name in zip(homes, names, strict=True):
        save_config(home, replace(load_config(home), fqdn=name))
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(
            lambda hn: publisher.run_once(hn[0], action="publish", fqdn=hn[1], port=1688,
                                          addresses=("127.0.0.1",)),
            zip(homes, names, strict=True),
        ))  # fmt: skip
    assert [[o.ok for o in r] for r in results] == [[True]] * 4, results
    marks = _markers(bind9, zone)
    assert [marks[n] for n in names] == [_id(h) for h in homes]
    assert _srv(bind9, zone, *names) == {f"0 0 1688 {n}" for n in names}
    for home, name in zip(homes, names, strict=True):
        publisher.run_once(home, action="unpublish", fqdn=name, port=1688, addresses=())
    assert _srv(bind9, zone, *names) == set()
