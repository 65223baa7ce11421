"""The test servers themselves: a real BIND 9 and a real PostgreSQL start, answer and stop.

These guard the fixtures every DNS and database test relies on; they check the
servers, not volact.
"""

from __future__ import annotations

import base64
import secrets
import socket
from pathlib import Path

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rdtypes.IN.SRV
import dns.tsig
import dns.update
import pytest
import sqlalchemy

from services import Bind9, Postgres, free_port, ipv6_loopback_available


def _srv_targets(reply: dns.message.Message) -> set[str]:
    return {
        f"{rr.port} {rr.target}"
        for rrset in reply.answer
        for rr in rrset
        if isinstance(rr, dns.rdtypes.IN.SRV.SRV)
    }


def test_free_port_is_free_for_tcp_and_udp() -> None:
    port = free_port()
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", port))


@pytest.mark.parametrize("tcp", [True, False], ids=["tcp", "udp"])
@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_bind_answers_soa_for_each_zone(bind9: Bind9, address: str, tcp: bool) -> None:
    if address == "::1" and not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback here")
    assert bind9.zones == ("corp.example.", "branch.example.")
    for zone in bind9.zones:
        reply = bind9.query(zone, "SOA", address=address, tcp=tcp)
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.answer[0].rdtype == dns.rdatatype.SOA
        assert str(reply.answer[0].name) == zone


def _remove_srv(bind9: Bind9, zone: str, target: str) -> None:
    """Delete one SRV record we added: the session server is shared by other tests."""
    update = bind9.update(zone)
    update.delete("_volact._tcp", "SRV", f"0 0 1688 {target}")
    assert bind9.send(update).rcode() == dns.rcode.NOERROR


def test_signed_update_adds_srv_record(bind9: Bind9) -> None:
    for zone in bind9.zones:
        update = bind9.update(zone)
        update.add("_volact._tcp", 60, "SRV", f"0 0 1688 kms-add.{zone}")
        update.add("kms-add", 60, "A", "127.0.0.1")
        update.add("kms-add", 60, "AAAA", "::1")
        assert bind9.send(update).rcode() == dns.rcode.NOERROR
        try:
            reply = bind9.query(f"_volact._tcp.{zone}", "SRV")
            assert f"1688 kms-add.{zone}" in _srv_targets(reply)
            reply = bind9.query(f"kms-add.{zone}", "A", tcp=False)
            assert [rr.to_text() for rr in reply.answer[0]] == ["127.0.0.1"]
        finally:
            _remove_srv(bind9, zone, f"kms-add.{zone}")
            cleanup = bind9.update(zone)
            cleanup.delete("kms-add")
            bind9.send(cleanup)
        assert f"1688 kms-add.{zone}" not in _srv_targets(
            bind9.query(f"_volact._tcp.{zone}", "SRV")
        )


def test_update_with_wrong_secret_is_refused(bind9: Bind9) -> None:
    zone = bind9.zones[0]
    wrong = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    update = bind9.update(zone, secret_b64=wrong)
    update.add("_volact._tcp", 60, "SRV", f"0 0 1688 forged.{zone}")
    try:
        reply = bind9.send(update)
    except dns.tsig.PeerError:
        pass  # BADSIG/BADKEY: dnspython raises on the server's TSIG error
    else:
        assert reply.rcode() in (dns.rcode.NOTAUTH, dns.rcode.REFUSED)
    assert f"1688 forged.{zone}" not in _srv_targets(bind9.query(f"_volact._tcp.{zone}", "SRV"))


def test_key_may_not_update_outside_its_records(bind9: Bind9) -> None:
    zone = bind9.zones[0]
    update = bind9.update(zone)
    update.add("_vlmcs._tcp", 60, "SRV", f"0 0 1688 kms.{zone}")  # not volact's label
    assert bind9.send(update).rcode() == dns.rcode.REFUSED
    unsigned = dns.update.Update(zone)
    unsigned.add("_volact._tcp", 60, "SRV", f"0 0 1688 anon.{zone}")
    assert bind9.send(unsigned).rcode() == dns.rcode.REFUSED


def test_stop_and_start_keep_port_and_data(bind9: Bind9) -> None:
    zone = bind9.zones[1]
    update = bind9.update(zone)
    update.add("_volact._tcp", 60, "SRV", f"0 0 1688 kms-restart.{zone}")
    assert bind9.send(update).rcode() == dns.rcode.NOERROR
    port = bind9.port

    bind9.stop()
    assert bind9.pid is None
    with pytest.raises((OSError, dns.exception.Timeout)):
        bind9.query(zone, "SOA", timeout=1.0)

    bind9.start()
    try:
        assert bind9.port == port
        reply = bind9.query(f"_volact._tcp.{zone}", "SRV")
        assert f"1688 kms-restart.{zone}" in _srv_targets(reply)
    finally:
        _remove_srv(bind9, zone, f"kms-restart.{zone}")


def test_key_file_is_bind_format(bind9: Bind9, tmp_path: Path) -> None:
    text = bind9.write_key_file(tmp_path / "volact.key").read_text()
    assert text == (
        f'key "{bind9.tsig_key_name}" {{\n'
        "\talgorithm hmac-sha256;\n"
        f'\tsecret "{bind9.tsig_secret_b64}";\n'
        "};\n"
    )
    assert len(base64.b64decode(bind9.tsig_secret_b64)) == 32


def test_postgres_accepts_sqlalchemy(postgres: Postgres) -> None:
    assert postgres.url.startswith("postgresql+psycopg://volact@127.0.0.1:")
    engine = sqlalchemy.create_engine(postgres.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("select 1")).scalar_one() == 1
            assert conn.execute(sqlalchemy.text("select current_database()")).scalar_one() == (
                postgres.dbname
            )
    finally:
        engine.dispose()


def test_postgres_restart_keeps_data(postgres: Postgres) -> None:
    url = postgres.create_database("services_restart")
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("create table t (x int)"))
            conn.execute(sqlalchemy.text("insert into t values (42)"))
        engine.dispose()
        postgres.stop()
        postgres.start()
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("select x from t")).scalar_one() == 42
    finally:
        engine.dispose()
