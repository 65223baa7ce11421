"""`HOST[:PORT]` parsing wherever a person types one: clear errors, never a crash."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from volact.addresses import (
    CONNECT,
    LISTEN,
    check_service_label,
    format_hostport,
    ip_literal,
    is_unicast,
    normalize_name,
    parse_hostport,
    valid_host_name,
)
from volact.authority.service import parse_listen as authority_listen
from volact.cli import main
from volact.client.srv import HostAddress
from volact.errors import AddressError, ConfigurationError, UsageError
from volact.exchanges import authority_url
from volact.host.config import parse_listen
from volact.host.dns.servers import ServerAddress
from volact.testing.hosts import make_host_home


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("kms1.corp.example", "kms1.corp.example", 1688),
        ("kms1:1700", "kms1", 1700),
        ("[2001:db8::5]:1688", "2001:db8::5", 1688),
        ("[::1]", "::1", 1688),
        ("::1", "::1", 1688),
    ],
)
def test_host_address_forms(text: str, host: str, port: int) -> None:
    a = HostAddress.parse(text)
    assert (a.host, a.port) == (host, port)
    assert HostAddress.parse(str(a)) == a


@pytest.mark.parametrize("text", ["h:²", "h:٣", "h:0", "h:65536", "[::1", "[::1]x", ""])
def test_bad_ports_and_brackets_are_configuration_errors(text: str) -> None:
    with pytest.raises(ConfigurationError):
        HostAddress.parse(text)
    with pytest.raises(ConfigurationError):
        ServerAddress.parse(text)


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_configuration_error(text: str) -> None:
    for parse in (HostAddress.parse, ServerAddress.parse):
        with contextlib.suppress(ConfigurationError):
            parse(text)
    with contextlib.suppress(ConfigurationError):
        parse_listen(text, 1688)


@pytest.mark.parametrize(
    "url", ["http://[::1", "ftp://x", "notaurl", "http://", "http://a b",
            "http://h:99999"],
)  # fmt: skip
def test_malformed_authority_urls_are_refused_before_any_request(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigurationError):
        authority_url(url)
    # Each command that talks to an authority says so in one line, with no traceback.
    home = tmp_path / "h"
    make_host_home(home, activated=False)
    assert main(["host", "activate", "--home", str(home), "--authority", url]) == 2
    err = capsys.readouterr().err
    assert "error: argument --authority" in err and "URL" in err
    assert "Traceback" not in err and "internal error" not in err


def test_a_good_authority_url_passes() -> None:
    assert authority_url("https://activate.example.com/base") == (
        "https://activate.example.com/base"
    )
    assert authority_url("http://[::1]:8088") == "http://[::1]:8088"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["set-host", "bad host!!"], "neither an IP address nor a host name"),
        (["set-host", "[::1"], "unclosed"),
        (["set-domain", "a..b"], "is not a DNS domain"),
        (["set-domain", "corp example"], "is not a DNS domain"),
    ],
)
def test_client_settings_are_checked_when_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    home = tmp_path / "auth"
    assert main(["authority", "init", "--home", str(home), "--demo-catalog"]) == 0
    profile = tmp_path / "profile.json"
    assert main(["authority", "export-profile", "--home", str(home), "--out", str(profile)]) == 0
    client = tmp_path / "c"
    assert main(["client", "init", "--home", str(client), "--profile", str(profile)]) == 0
    capsys.readouterr()
    assert main(["client", argv[0], "--home", str(client), argv[1]]) in (1, 2)
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------ the one grammar

_label = st.from_regex(r"[a-z0-9_]([a-z0-9_-]{0,8}[a-z0-9_])?", fullmatch=True)
names = st.lists(_label, min_size=1, max_size=4).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
hosts = st.one_of(names, ipv4, ipv6)
ports = st.integers(1, 65535)


@given(hosts, ports)
def test_format_then_parse_gives_back_host_and_port(host: str, port: int) -> None:
    text = format_hostport(host, port)
    assert parse_hostport(text, default_port=None) == (host, port)
    # Every parser of the code base reads it the same way.
    assert HostAddress.parse(text) == HostAddress(host, port)
    assert ServerAddress.parse(text) == ServerAddress(host, port)
    assert parse_listen(text, 1) == (host, port)
    assert authority_listen(text) == (host, port)


@given(hosts, ports)
def test_without_a_port_the_default_is_used(host: str, port: int) -> None:
    text = f"[{host}]" if ":" in host else host
    assert parse_hostport(text, default_port=port) == (host, port)
    if ":" in host:  # a bare IPv6 literal reads as a host with no port
        assert parse_hostport(host, default_port=port) == (host, port)
    with pytest.raises(AddressError, match="no port"):
        parse_hostport(text, default_port=None)


@given(hosts, st.one_of(st.integers(-5, 0), st.integers(65536, 10**6)))
def test_ports_outside_the_range_are_refused(host: str, port: int) -> None:
    with pytest.raises(AddressError, match=r"port must be 1\.\.65535"):
        parse_hostport(format_hostport(host, port), default_port=None, ports=CONNECT)
    if port == 0:  # listening on port 0 lets the system choose
        assert parse_hostport(format_hostport(host, 0), default_port=None, ports=LISTEN)[1] == 0


@given(st.text(max_size=40), st.sampled_from([CONNECT, LISTEN]), st.booleans())
def test_any_text_parses_or_raises_the_one_address_error(
    text: str, ports: object, any_host: bool
) -> None:
    assert ports is CONNECT or ports is LISTEN
    try:
        host, port = parse_hostport(text, default_port=53, ports=ports, any_host=any_host)
    except AddressError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert ports.low <= port <= ports.high
    # What parses is an IP literal, a host name, or (only when allowed) every interface.
    assert ip_literal(host) is not None or valid_host_name(host) or (any_host and host == "")
    assert parse_hostport(format_hostport(host, port), default_port=None, ports=ports,
                          any_host=any_host) == (host, port)  # fmt: skip


@given(st.text(max_size=30))
def test_the_authority_listen_error_stays_a_usage_error(text: str) -> None:
    with contextlib.suppress(UsageError):
        authority_listen(text)


def test_the_address_error_is_a_configuration_error_with_its_code() -> None:
    assert issubclass(AddressError, ConfigurationError)
    assert AddressError("x").code == "configuration"


@given(st.ip_addresses())
def test_is_unicast_matches_its_definition(ip: object) -> None:
    import ipaddress

    assert isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
    base = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
    expected = base.is_loopback or not (
        base.is_unspecified or base.is_multicast or base.is_reserved
        or (base.version == 4 and base in ipaddress.ip_network("0.0.0.0/8"))
    )  # fmt: skip
    assert is_unicast(ip) == expected


@pytest.mark.parametrize(
    ("text", "unicast"),
    [("127.0.0.1", True), ("::1", True), ("192.0.2.1", True), ("0.0.0.0", False),
     ("::", False), ("255.255.255.255", False), ("224.0.0.1", False), ("ff02::1", False),
     ("::ffff:0.0.0.0", False), ("::ffff:192.0.2.1", True), ("0.1.2.3", False)],
)  # fmt: skip
def test_is_unicast_examples(text: str, unicast: bool) -> None:
    ip = ip_literal(text)
    assert ip is not None and is_unicast(ip) is unicast


@given(names)
def test_names_normalize_idempotently(name: str) -> None:
    n = normalize_name(name.upper() + ".")
    assert n == name.lower() and normalize_name(n) == n and valid_host_name(n)


@pytest.mark.parametrize("label", ["_volact._tcp", "_VOLACT._TCP.", " _acme-kms._udp "])
def test_service_labels(label: str) -> None:
    assert check_service_label(label) == label.strip().lower().rstrip(".")


@pytest.mark.parametrize(
    ("label", "message"),
    [("_vlmcs._tcp", "another protocol"), ("_VLMCS._tcp", "another protocol"),
     ("volact", "must look like"), ("_a._b._c", "must look like"),
     ("_a b._tcp", "not a DNS label")],
)  # fmt: skip
def test_bad_service_labels_have_one_rule_everywhere(label: str, message: str) -> None:
    from volact.host.dns.settings import DnsSettings
    from volact.profile import ProductProfile

    with pytest.raises(AddressError, match=message):
        check_service_label(label)
    with pytest.raises(AddressError, match=message):
        DnsSettings(label=label)
    with pytest.raises(AddressError, match=message):
        ProductProfile("v", bytes(32), None, dns_label=label)  # type: ignore[arg-type]
