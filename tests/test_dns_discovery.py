"""Client discovery against a real BIND 9 serving hostile and ordinary SRV data.

A ``named`` of this module's own serves ``hostile.example.``, whose records are
what a broken or malicious zone could hold: port 0, the "no service" target,
names that are not host names, hundreds of records. Discovery must filter and cap
them, never pass them on. (BIND's own check-names keeps targets that are not host
names out of a primary zone, so those are fed to the filter as crafted rdata.)
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from services import Bind9, ServiceMissing, free_port
from volact.client import discovery
from volact.client.srv import HostAddress, SrvRecord
from volact.errors import ConfigurationError, TransportError

ZONE = "hostile.example"
SRV = f"_volact._tcp.{ZONE}"

_RECORDS = [
    "_volact._tcp 60 IN SRV 0 10 1688 good",
    "_volact._tcp 60 IN SRV 0 10 1688 good",  # BIND keeps one of a duplicate
    "_volact._tcp 60 IN SRV 5 0 1689 Good2.Hostile.Example.",
    "_volact._tcp 60 IN SRV 0 0 0 zero-port",
    "_volact._tcp 60 IN SRV 0 0 1688 .",
    '_volact._tcp.txtonly 60 IN TXT "not an SRV record"',
    "good 60 IN A 127.0.0.1",
    "good 60 IN AAAA ::1",
    "good 60 IN AAAA ::",
    "manyaddr 60 IN A 127.0.0.1",
    *(f"_volact._tcp.many 60 IN SRV 0 1 {1000 + i} h{i}" for i in range(100)),  # BIND allows 100
    *(f"manyaddr 60 IN A 127.0.1.{i}" for i in range(1, 60)),
    # 100 records: 64 of priority 5 first, then 36 of priority 0, which must all be kept.
    *(f"_volact._tcp.prio 60 IN SRV 5 1 {2000 + i} p5-{i}" for i in range(64)),
    *(f"_volact._tcp.prio 60 IN SRV 0 1 {3000 + i} p0-{i}" for i in range(36)),
    # Addresses that do not name one host, beside the two that do.
    *(
        f"oddaddr 60 IN {t} {a}"
        for t, a in [
            ("A", "255.255.255.255"),
            ("A", "224.0.0.1"),
            ("A", "239.255.255.250"),
            ("A", "240.0.0.1"),
            ("A", "0.0.0.7"),
            ("A", "127.0.0.1"),
            ("AAAA", "ff02::1"),
            ("AAAA", "ff05::1:3"),
            ("AAAA", "::ffff:224.0.0.1"),
            ("AAAA", "::ffff:255.255.255.255"),
            ("AAAA", "::1"),
        ]
    ),
]


@pytest.fixture(scope="module")
def hostile() -> Iterator[Bind9]:
    try:
        server = Bind9(zones=(ZONE,), records={ZONE: _RECORDS})
    except ServiceMissing as exc:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{exc} (CI=true: the CI host must provide it)")
        pytest.skip(f"{exc} (or run `make deps` as root)")
    with server:
        yield server


def _ns(server: Bind9) -> list[HostAddress]:
    return [HostAddress("127.0.0.1", server.port)]


def test_hostile_records_are_filtered(hostile: Bind9) -> None:
    got = discovery.lookup_srv(SRV, nameservers=_ns(hostile))
    assert sorted(got, key=lambda r: r.target) == [
        SrvRecord(0, 10, 1688, f"good.{ZONE}"),
        SrvRecord(5, 0, 1689, f"good2.{ZONE}"),
    ]


def test_huge_answer_sets_are_capped(hostile: Bind9) -> None:
    got = discovery.lookup_srv(f"_volact._tcp.many.{ZONE}.", nameservers=_ns(hostile))
    assert len(got) == discovery.MAX_RECORDS
    assert len(set(got)) == len(got)
    addrs = discovery.resolve_host(f"manyaddr.{ZONE}", nameservers=_ns(hostile))
    assert len(addrs) == discovery.MAX_ADDRESSES


def test_capping_keeps_the_best_priorities(hostile: Bind9) -> None:
    # 100 records, 36 of them priority 0: a cut taken before sorting keeps about 23
    # of those (whatever order BIND answers in); all 36 must survive the cut.
    got = discovery.lookup_srv(f"_volact._tcp.prio.{ZONE}", nameservers=_ns(hostile))
    assert len(got) == discovery.MAX_RECORDS
    assert sum(r.priority == 0 for r in got) == 36
    assert [r.priority for r in got] == sorted(r.priority for r in got)


def test_capping_on_crafted_rdata_keeps_the_lowest_priority() -> None:
    def srv(text: str) -> object:
        return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SRV, text)

    answer = [srv(f"9 0 {1000 + i} h{i}.example.") for i in range(100)]
    answer.append(srv("0 0 1688 best.example."))
    got = discovery._srv_from_answer(answer)
    assert len(got) == discovery.MAX_RECORDS
    assert got[0] == SrvRecord(0, 0, 1688, "best.example")


def test_non_unicast_addresses_are_dropped(hostile: Bind9) -> None:
    ns = _ns(hostile)
    assert discovery.resolve_host(f"oddaddr.{ZONE}", nameservers=ns) == ["::1", "127.0.0.1"]
    got = asyncio.run(discovery.resolve_host_async(f"oddaddr.{ZONE}", nameservers=ns))
    assert got == ["::1", "127.0.0.1"]


def test_missing_names_and_types_give_empty_lists(hostile: Bind9) -> None:
    ns = _ns(hostile)
    assert discovery.lookup_srv(f"_volact._tcp.nothing.{ZONE}", nameservers=ns) == []
    assert discovery.lookup_srv(f"_volact._tcp.txtonly.{ZONE}", nameservers=ns) == []
    assert discovery.resolve_host(f"nothing.{ZONE}", nameservers=ns) == []


def test_resolve_host_v6_first_and_no_wildcard(hostile: Bind9) -> None:
    assert discovery.resolve_host(f"good.{ZONE}", nameservers=_ns(hostile)) == ["::1", "127.0.0.1"]


def test_ip_literals_come_back_as_they_are() -> None:
    assert discovery.resolve_host("192.0.2.1") == ["192.0.2.1"]
    assert discovery.resolve_host("[2001:db8::1]") == ["2001:db8::1"]


def test_no_nameserver_answering_is_a_transport_error() -> None:
    dead = [HostAddress("127.0.0.1", free_port())]
    with pytest.raises(TransportError, match="SRV"):
        discovery.lookup_srv(SRV, nameservers=dead, timeout=1.0)
    with pytest.raises(TransportError):
        discovery.resolve_host(f"good.{ZONE}", nameservers=dead, timeout=1.0)
    with pytest.raises(TransportError):
        asyncio.run(discovery.lookup_srv_async(SRV, nameservers=dead, timeout=1.0))


def test_refusing_nameserver_is_a_transport_error(hostile: Bind9) -> None:
    # named is authoritative only for its zone and does not recurse: REFUSED elsewhere.
    with pytest.raises(TransportError, match="failed or refused"):
        discovery.lookup_srv("_volact._tcp.elsewhere.test", nameservers=_ns(hostile))


def test_async_twins_agree(hostile: Bind9) -> None:
    ns = _ns(hostile)

    async def both() -> tuple[list[SrvRecord], list[str]]:
        return (
            await discovery.lookup_srv_async(SRV, nameservers=ns),
            await discovery.resolve_host_async(f"good.{ZONE}", nameservers=ns),
        )

    srv, addrs = asyncio.run(both())
    assert sorted(srv, key=lambda r: r.target) == sorted(
        discovery.lookup_srv(SRV, nameservers=ns), key=lambda r: r.target
    )
    assert addrs == ["::1", "127.0.0.1"]
    assert asyncio.run(discovery.resolve_host_async("::1")) == ["::1"]


def test_nameserver_by_name_and_over_ipv6(hostile: Bind9) -> None:
    named = [HostAddress("localhost", hostile.port)]
    assert discovery.lookup_srv(SRV, nameservers=named)
    if "::1" in hostile.addresses:
        assert discovery.lookup_srv(SRV, nameservers=[HostAddress("::1", hostile.port)])


def test_bad_query_names_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        discovery.lookup_srv("a" * 64 + ".example", nameservers=[HostAddress("127.0.0.1", 9)])


def test_answer_filter_on_crafted_rdata() -> None:
    def srv(text: str) -> object:
        return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SRV, text)

    a = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.A, "127.0.0.1")
    got = discovery._srv_from_answer(
        [
            a,
            srv("0 0 1 ok.example."),
            srv("0 0 1 bad\\032name.example."),
            srv("0 0 1 semi\\;colon.example."),
            srv("0 0 1 -dash.example."),
            srv("0 0 1 x_y.example."),
            srv("0 0 0 zero.example."),
            srv("0 0 1 ."),
            srv("0 0 1 OK.example."),  # the same target again, in other case
        ]
    )
    assert got == [SrvRecord(0, 0, 1, "ok.example"), SrvRecord(0, 0, 1, "x_y.example")]
    assert dns.name.from_text("bad\\032name.example.")  # a DNS name, not a host name


def test_search_domains_are_names() -> None:
    for d in discovery.search_domains():
        assert d and not d.endswith(".")
