"""The sans-I/O half of DNS publishing: key files, settings, update plans, backoff.

No server here: these check the decisions (which records one update deletes and
adds, when a domain is due again) and that bad input gives a clear error.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from volact.errors import ConfigurationError
from volact.host.dns_settings import (
    Backoff,
    Change,
    DnsSettings,
    FailureKind,
    Outcome,
    PublishDomain,
    PublishSchedule,
    ServerAddress,
    SrvValue,
    check_label,
    parse_bind_key,
    plan_publish,
    plan_unpublish,
    publishable_addresses,
)

SECRET = base64.b64encode(bytes(range(32))).decode()
KEYGEN_TEXT = f'key "volact-host1" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n'


# ------------------------------------------------------------------ key files


def test_parses_tsig_keygen_format() -> None:
    key = parse_bind_key(KEYGEN_TEXT)
    assert (key.name, key.algorithm, key.secret) == (
        "volact-host1",
        "hmac-sha256",
        bytes(range(32)),
    )
    assert SECRET not in repr(key)


def test_parses_real_tsig_keygen_output() -> None:
    keygen = shutil.which("tsig-keygen") or shutil.which("tsig-keygen", path="/usr/sbin:/sbin")
    if keygen is None:
        pytest.skip("tsig-keygen not installed (apt-get install bind9)")
    for alg in ("hmac-sha256", "hmac-sha512"):
        text = subprocess.run(
            [keygen, "-a", alg, "host1.corp.example"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        key = parse_bind_key(text)
        assert key.name == "host1.corp.example"
        assert key.algorithm == alg
        assert key.secret_b64() in text


def test_key_file_comments_and_unquoted_name() -> None:
    text = (
        "# made by hand\n// another comment\n/* block\ncomment */\n"
        f"key volact-host1 {{ algorithm HMAC-SHA256; secret {SECRET}; }};"
    )
    assert parse_bind_key(text).name == "volact-host1"


@pytest.mark.parametrize("secret", ["AAA//w==", "////", "Zm9v//8=", "Zm9v#//="])
def test_comment_markers_inside_a_quoted_secret_are_part_of_it(secret: str) -> None:
    # base64 secrets contain "//" about once in a hundred keys; "#" never, but a
    # quoted string is opaque to comments whatever it holds.
    text = f'key "k" {{ algorithm hmac-sha256; secret "{secret}"; }}; // trailing'
    if "#" in secret:
        with pytest.raises(ConfigurationError, match="not valid base64"):
            parse_bind_key(text)
        return
    assert parse_bind_key(text).secret_b64() == secret


def test_an_unterminated_comment_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unterminated"):
        parse_bind_key(f'key "k" {{ algorithm hmac-sha256; secret "{SECRET}"; /* open')


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no key"),
        ("options { };", "expected 'key"),
        ('key "k" { algorithm hmac-sha256; };', "no 'secret'"),
        (f'key "k" {{ secret "{SECRET}"; }};', "no 'algorithm'"),
        (f'key "k" {{ algorithm hmac-foo; secret "{SECRET}"; }};', "unknown algorithm"),
        ('key "k" { algorithm hmac-sha256; secret "not base64!"; };', "not valid base64"),
        (f'key "k" {{ algorithm hmac-sha256; secret "{SECRET}";', "not closed"),
        (f'key "k" {{ algorithm hmac-sha256; secret "{SECRET}" }};', "STATEMENT VALUE"),
        (f'key "k" {{ algorithm hmac-sha256; secret "{SECRET}"; flavour x; }};', "unknown"),
        (KEYGEN_TEXT + KEYGEN_TEXT.replace("host1", "host2"), "2 keys"),
        ('key "k" { secret "abc', "unterminated"),
    ],
)
def test_bad_key_files_are_refused_without_echoing_the_secret(text: str, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle) as info:
        parse_bind_key(text)
    assert SECRET not in str(info.value)


@given(st.text(max_size=300))
def test_key_parser_never_raises_anything_else(text: str) -> None:
    with contextlib.suppress(ConfigurationError):
        parse_bind_key(text)


# ------------------------------------------------------------------ settings


def test_publish_domain_parsing() -> None:
    assert PublishDomain.parse("Branch.Example.") == PublishDomain("branch.example", 0, 0)
    assert PublishDomain.parse("corp.example,10,20") == PublishDomain("corp.example", 10, 20)
    for bad in ("corp.example,10", "corp.example,x,1", "corp.example,1,70000", "bad..name", ""):
        with pytest.raises(ConfigurationError):
            PublishDomain.parse(bad)


def test_server_address_parsing() -> None:
    assert ServerAddress.parse("127.0.0.1") == ServerAddress("127.0.0.1", 53)
    assert ServerAddress.parse("127.0.0.1:5353") == ServerAddress("127.0.0.1", 5353)
    assert ServerAddress.parse("[::1]:5353") == ServerAddress("::1", 5353)
    assert ServerAddress.parse("::1") == ServerAddress("::1", 53)
    assert ServerAddress.parse("ns1.corp.example") == ServerAddress("ns1.corp.example", 53)
    assert str(ServerAddress("::1", 5353)) == "[::1]:5353"
    for bad in ("", "[::1", "1.2.3.4:0", "1.2.3.4:99999", "[::1]x", "bad name:53", "[zz]:53"):
        with pytest.raises(ConfigurationError):
            ServerAddress.parse(bad)


def test_settings_json_round_trip_has_no_secret() -> None:
    s = DnsSettings(
        enabled=True,
        servers=(ServerAddress("127.0.0.1", 5353), ServerAddress("::1", 53)),
        tsig_key_file="/etc/volact/host.key",
        domain="corp.example",
        priority=1,
        weight=2,
        publish=(PublishDomain("branch.example", 10, 20),),
        ttl=300,
        addresses=("192.0.2.1", "2001:db8::1"),
        retry_initial=1,
        retry_max=4,
    )
    obj = s.to_json()
    assert DnsSettings.from_json(obj) == s
    assert "secret" not in str(obj)


@pytest.mark.parametrize(
    "obj",
    [
        [],
        {"enabled": "yes"},
        {"ttl": 0},
        {"ttl": True},
        {"servers": [53]},
        {"servers": ["1.2.3.4:0"]},
        {"publish": [{"priority": 1}]},
        {"publish": [{"domain": "a.example"}, {"domain": "A.example."}]},
        {"addresses": ["0.0.0.0"]},
        {"label": "_vlmcs._tcp"},
        {"retry_initial": 10, "retry_max": 5},
        {"surprise": 1},
    ],
)
def test_bad_settings_are_clear_errors(obj: object) -> None:
    with pytest.raises(ConfigurationError):
        DnsSettings.from_json(obj)


def test_vlmcs_label_is_never_accepted() -> None:
    with pytest.raises(ConfigurationError, match="another protocol"):
        check_label("_VLMCS._tcp.")
    assert check_label("_volact._tcp") == "_volact._tcp"
    with pytest.raises(ConfigurationError):
        check_label("volact.tcp")


def test_targets_own_domain_first_publish_list_overrides() -> None:
    s = DnsSettings(
        priority=5,
        publish=(PublishDomain("branch.example", 10, 20), PublishDomain("corp.example", 1, 1)),
    )
    assert s.targets("host1.corp.example") == (
        PublishDomain("corp.example", 1, 1),
        PublishDomain("branch.example", 10, 20),
    )
    assert DnsSettings(domain="other.example").targets("h.corp.example") == (
        PublishDomain("other.example"),
    )
    assert DnsSettings().targets("localhost") == ()


def test_publish_list_add_update_remove() -> None:
    s = DnsSettings().with_publish([PublishDomain("a.example", 1, 1)])
    s = s.with_publish([PublishDomain("a.example", 2, 3), PublishDomain("b.example")])
    assert s.publish == (PublishDomain("a.example", 2, 3), PublishDomain("b.example"))
    assert s.without_publish(["A.example."]).publish == (PublishDomain("b.example"),)
    with pytest.raises(ConfigurationError, match="not in the publish list"):
        s.without_publish(["c.example"])


def test_publishable_addresses_drop_wildcards_and_ports() -> None:
    got = publishable_addresses(
        ["0.0.0.0:1688", "[::]:1688", "127.0.0.1:1688", "[::1]:1688", "junk", "::1", "224.0.0.1"]
    )
    assert got == ("127.0.0.1", "::1")


# ------------------------------------------------------------------ plans


def _plan(existing: list[SrvValue], **kw: object) -> tuple[set[str], set[str]]:
    args: dict[str, object] = {
        "zone": "corp.example",
        "label": "_volact._tcp",
        "fqdn": "h1.corp.example",
        "port": 1688,
        "priority": 0,
        "weight": 0,
        "ttl": 60,
        "addresses": (),
        "existing_srv": existing,
    }
    args.update(kw)
    plan = plan_publish(**args)  # type: ignore[arg-type]
    return {str(c) for c in plan.deletes}, {str(c) for c in plan.adds}


def test_publish_replaces_only_own_srv_whatever_its_port() -> None:
    other = SrvValue(0, 0, 1688, "h2.corp.example")
    mine_old = SrvValue(0, 0, 1700, "h1.corp.example")
    deletes, adds = _plan([other, mine_old])
    assert deletes == {"_volact._tcp.corp.example SRV 0 0 1700 h1.corp.example."}
    assert adds == {"_volact._tcp.corp.example SRV 0 0 1688 h1.corp.example."}


def test_publish_adds_a_and_aaaa_only_inside_the_zone() -> None:
    deletes, adds = _plan([], addresses=("0.0.0.0", "192.0.2.7", "2001:db8::7"))
    assert "h1.corp.example A *" in deletes and "h1.corp.example AAAA *" in deletes
    assert "h1.corp.example A 192.0.2.7" in adds and "h1.corp.example AAAA 2001:db8::7" in adds
    deletes, adds = _plan([], zone="branch.example", addresses=("192.0.2.7",))
    assert deletes == set()
    assert adds == {"_volact._tcp.branch.example SRV 0 0 1688 h1.corp.example."}


def test_wildcard_listener_leaves_address_records_alone() -> None:
    deletes, adds = _plan([], addresses=("0.0.0.0", "::"))
    assert not any(" A" in c for c in deletes | adds)


def test_bad_port_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        _plan([], port=0)


def test_unpublish_removes_only_own() -> None:
    plan = plan_unpublish(
        zone="corp.example",
        label="_volact._tcp",
        fqdn="h1.corp.example",
        addresses=("127.0.0.1",),
        existing_srv=[
            SrvValue(0, 0, 1688, "h2.corp.example"),
            SrvValue(0, 0, 1, "h1.corp.example"),
        ],
    )
    assert plan.adds == ()
    assert plan.deletes == (
        Change("_volact._tcp.corp.example", "SRV", "0 0 1 h1.corp.example."),
        Change("h1.corp.example", "A", None),
        Change("h1.corp.example", "AAAA", None),
    )


# ------------------------------------------------------------------ schedule


def test_backoff_doubles_to_a_cap_and_republishes_daily() -> None:
    b = Backoff()
    assert [b.delay(n) for n in range(1, 9)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert b.delay(0) == 24 * 3600
    assert b.delay(10_000) == 3600  # a week-long outage builds no huge number


def test_schedule_due_record_and_wakeup() -> None:
    sched = PublishSchedule(["a.example", "b.example"], Backoff(1, 4, 100), now=1000)
    assert sched.due(1000) == ["a.example", "b.example"]
    sched.record(Outcome("a.example", True, "SRV ..."), 1000)
    fail = Outcome("b.example", False, "timeout", FailureKind.TIMEOUT)
    delays = [sched.record(fail, 1000).next_attempt - 1000 for _ in range(4)]
    assert delays == [1, 2, 4, 4]
    assert sched.states["b.example"].last_error == "timeout"
    assert sched.due(1003) == []
    assert sched.due(1004) == ["b.example"]
    assert sched.next_wakeup() == 1004
    state = sched.record(Outcome("b.example", True, "ok"), 1005)
    assert (state.failures, state.last_error, state.next_attempt) == (0, None, 1105)


def test_outcome_message_names_the_domain_and_server() -> None:
    o = Outcome("corp.example", False, "refused (REFUSED): x", FailureKind.REFUSED, "[::1]:53")
    assert o.message() == "corp.example: refused (REFUSED): x (server [::1]:53)"
