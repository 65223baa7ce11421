"""The sans-I/O half of DNS publishing: key files, settings, update plans, backoff.

No server here: these check the decisions (which records one update deletes and
adds, when a domain is due again) and that bad input gives a clear error.
"""

from __future__ import annotations

import base64
import contextlib
import re
import secrets
import shutil
import subprocess
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from volact.addresses import check_service_label as check_label
from volact.errors import ConfigurationError, NameOwned
from volact.host.dns.names import publishable_addresses
from volact.host.dns.outcomes import FailureKind, Outcome
from volact.host.dns.ownership import Marker
from volact.host.dns.plans import (
    Change,
    Ownership,
    Published,
    SrvValue,
    UpdatePlan,
    plan_publish,
    plan_unpublish,
)
from volact.host.dns.schedule import Backoff, PublishSchedule
from volact.host.dns.servers import ServerAddress
from volact.host.dns.settings import DnsSettings, PublishDomain
from volact.host.dns.tsig import parse_bind_key

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
        (f'key "k" {{ algorithm hmac-sha256; secret "{SECRET}" }};', "expected 'algorithm NAME;'"),
        (f'key "k" {{ algorithm hmac-sha256; secret "{SECRET}"; flavour x; }};', "unknown"),
        (KEYGEN_TEXT + KEYGEN_TEXT.replace("host1", "host2"), "2 keys"),
        ('key "k" { secret "abc', "unterminated"),
    ],
)
def test_bad_key_files_are_refused_without_echoing_the_secret(text: str, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle) as info:
        parse_bind_key(text)
    assert SECRET not in str(info.value)


def _leaks(secret: str, text: str, n: int = 6) -> list[str]:
    """The substrings of ``secret`` of ``n`` characters that appear in ``text`` (any case)."""
    low = text.lower()
    return [
        secret[i : i + n] for i in range(len(secret) - n + 1) if secret[i : i + n].lower() in low
    ]


def _malformed_key_files(secret: str) -> list[str]:
    """Key files that are wrong in many ways, with the secret in many places."""
    good = [
        "key", '"host1.corp.example"', "{", "algorithm", "hmac-sha256", ";",
        "secret", f'"{secret}"', ";", "}", ";",
    ]  # fmt: skip
    files = [
        secret,
        secret + "\n",
        f'"{secret}"',
        f"# a comment\n\n{secret}\n",
        f"secret {secret};",
        f'secret "{secret}";',
        f'{{ secret "{secret}"; }};',
        f'key {secret} {{ algorithm hmac-sha256; secret "{secret}"; }};',
        f'key "{secret}" {{ algorithm hmac-sha256; }};',
        f'key "{secret.lower()}" {{ algorithm hmac-sha256; }};',
        f'key "k" {{ algorithm {secret}; secret "{secret}"; }};',
        f'key "k" {{ {secret} "x"; }};',
        f'key "k" {{ {secret}; }};',
        f'key "k" {{ algorithm hmac-sha256; secret {secret} }};',
        f'key "k" {{ algorithm hmac-sha256; secret "{secret}!"; }};',
        f'key "k" {{ algorithm hmac-sha256; secret "{secret}" "{secret}"; }};',
        f'key "k" {{ algorithm hmac-sha256; secret "{secret}"; }}; {secret}',
        f'key "k" {{ algorithm hmac-sha256; secret "{secret}"; }} {secret};',
        f'key "k" {{ algorithm hmac-sha256; secret "{secret}";',
        f'key "k" {{ algorithm hmac-sha256; secret "{secret}',
        f'key "k" {{ algorithm hmac-sha256; secret "{secret}"; /* {secret}',
        f'key "k" {{ secret "{secret}"; }};',
        f'options {{ secret "{secret}"; }};',
        f'key "k" {{ algorithm hmac-sha256; secret "{secret}"; }};' * 2,
    ]
    # Every token of a good file replaced by the secret, and the secret put before each.
    for i in range(len(good)):
        files.append(" ".join([*good[:i], secret, *good[i + 1 :]]))
        files.append("\n".join([*good[:i], secret, *good[i:]]))
    return files


def test_key_file_errors_never_quote_any_of_the_secret() -> None:
    # The error text lands in `host dns show --json`, `host status`, dns-state.json
    # and host events: a malformed file (or one holding just the secret) must not
    # leak any part of it there.
    for _ in range(20):
        secret = base64.b64encode(secrets.token_bytes(32)).decode()
        for text in _malformed_key_files(secret):
            try:
                parse_bind_key(text)
            except ConfigurationError as exc:
                message = str(exc)
            else:
                continue  # some placements still make a valid file
            assert not _leaks(secret, message), (text, message)
            assert re.search(r"line \d+|holds no key|keys;", message), message


def test_key_file_errors_name_the_line() -> None:
    text = f'key "k" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}!";\n}};\n'
    with pytest.raises(ConfigurationError, match="line 3: the secret is not valid base64"):
        parse_bind_key(text)
    with pytest.raises(ConfigurationError, match="line 2: expected 'key"):
        parse_bind_key(f"# only the secret\n{SECRET}\n")


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


def test_bad_server_name_is_named_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        ServerAddress.parse("bad host!")
    message = str(info.value)
    assert message.count("bad host!") == 1, message
    assert "neither an IP address nor a host name" in message


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


def test_publishable_addresses_are_unicast() -> None:
    bad = ["255.255.255.255", "240.0.0.1", "0.1.2.3", "ff02::1", "::ffff:224.0.0.1", "::2"]
    assert publishable_addresses([*bad, "192.0.2.1", "2001:db8::1"]) == ("192.0.2.1", "2001:db8::1")
    for a in bad:
        with pytest.raises(ConfigurationError, match="unicast"):
            DnsSettings(addresses=(a,))


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
    assert deletes == set()  # nothing published before: no A/AAAA is deleted
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


SRV_OWNER = "_volact._tcp.corp.example"


def _published(fqdn: str, *records: tuple[str, str, str]) -> Published:
    return Published(fqdn, tuple(Change(n, t, r) for n, t, r in records))


def test_publish_deletes_exactly_what_it_published_before() -> None:
    before = _published(
        "h1.corp.example",
        (SRV_OWNER, "SRV", "0 0 1688 h1.corp.example."),
        ("h1.corp.example", "A", "192.0.2.10"),
    )
    deletes, adds = _plan([], addresses=("192.0.2.11",), previous=before)
    # Only the A rdata it published goes; never the RRset, and no AAAA at all.
    assert deletes == {
        f"{SRV_OWNER} SRV 0 0 1688 h1.corp.example.",
        "h1.corp.example A 192.0.2.10",
    }
    assert adds == {f"{SRV_OWNER} SRV 0 0 1688 h1.corp.example.", "h1.corp.example A 192.0.2.11"}


def test_publish_under_a_new_fqdn_deletes_the_old_records() -> None:
    before = _published(
        "old.corp.example",
        (SRV_OWNER, "SRV", "0 0 1688 old.corp.example."),
        ("old.corp.example", "AAAA", "2001:db8::1"),
    )
    other = SrvValue(0, 0, 1688, "h2.corp.example")
    deletes, adds = _plan([other, SrvValue(0, 0, 1688, "old.corp.example")], previous=before)
    assert deletes == {f"{SRV_OWNER} SRV 0 0 1688 old.corp.example."}
    assert adds == {f"{SRV_OWNER} SRV 0 0 1688 h1.corp.example."}
    # The old name's address goes in a second update: a policy that no longer grants
    # the old name must not refuse the new records with it.
    plan = plan_publish(
        zone="corp.example",
        label="_volact._tcp",
        fqdn="h1.corp.example",
        port=1688,
        priority=0,
        weight=0,
        ttl=60,
        addresses=(),
        existing_srv=[],
        previous=before,
    )
    assert plan.cleanup == (Change("old.corp.example", "AAAA", "2001:db8::1"),)


def test_unpublish_removes_only_own_and_what_was_published() -> None:
    before = _published("h1.corp.example", ("h1.corp.example", "A", "127.0.0.1"))
    plan = plan_unpublish(
        zone="corp.example",
        label="_volact._tcp",
        fqdn="h1.corp.example",
        existing_srv=[
            SrvValue(0, 0, 1688, "h2.corp.example"),
            SrvValue(0, 0, 1, "h1.corp.example"),
        ],
        previous=before,
    )
    assert plan.adds == ()
    assert plan.deletes == (
        Change(SRV_OWNER, "SRV", "0 0 1 h1.corp.example."),
        Change("h1.corp.example", "A", "127.0.0.1"),
    )
    # With nothing recorded, no address is removed at all.
    bare = plan_unpublish(
        zone="corp.example", label="_volact._tcp", fqdn="h1.corp.example", existing_srv=[]
    )
    assert bare.deletes == ()


def test_published_state_round_trip_and_untrusted_entries() -> None:
    p = _published(
        "h1.corp.example",
        (SRV_OWNER, "SRV", "1 2 1688 h1.corp.example."),
        ("h1.corp.example", "A", "192.0.2.1"),
        ("h1.corp.example", "AAAA", "2001:db8::1"),
    )
    assert Published.from_state(p.to_json(), zone="corp.example", fqdn=None) == p
    hostile = {
        "fqdn": "h1.corp.example",
        "records": [
            {"name": "h1.other.example", "type": "A", "rdata": "192.0.2.1"},  # another zone
            {"name": "h1.corp.example", "type": "A", "rdata": "2001:db8::1"},  # wrong family
            {"name": "h1.corp.example", "type": "NS", "rdata": "ns.corp.example."},
            {"name": "corp.example", "type": "SRV", "rdata": "0 0 1 h1.corp.example."},
            {"name": SRV_OWNER, "type": "SRV", "rdata": "0 0 99999 h1.corp.example."},
            {"name": SRV_OWNER, "type": "SRV", "rdata": "junk"},
            "not a record",
            {"name": "h1.corp.example", "type": "A", "rdata": "192.0.2.9"},
        ],
    }
    got = Published.from_state(hostile, zone="corp.example", fqdn=None)
    assert got.records == (Change("h1.corp.example", "A", "192.0.2.9"),)
    assert Published.from_state({}, zone="corp.example", fqdn="h1.corp.example") == Published(
        None, ()
    )


def test_state_from_before_rdatas_were_recorded() -> None:
    # Older dns-state.json: "published" and "addresses" per domain, the FQDN on top.
    legacy = {"published": True, "addresses": ["192.0.2.1", "::1"]}
    before = Published.from_state(legacy, zone="corp.example", fqdn="old.corp.example")
    assert before.records == (
        Change("old.corp.example", "A", "192.0.2.1"),
        Change("old.corp.example", "AAAA", "::1"),
    )
    # Its SRV is found by the old name's target, since its rdata was not kept.
    deletes, _ = _plan(
        [SrvValue(0, 0, 1688, "old.corp.example"), SrvValue(0, 0, 1688, "h2.corp.example")],
        previous=before,
    )
    assert f"{SRV_OWNER} SRV 0 0 1688 old.corp.example." in deletes
    assert not any("h2" in d for d in deletes)


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


# ------------------------------------------------------------------ ownership markers

ME, OTHER = "00112233445566aa", "ffeeddccbbaa9988"
OWN_ZONE = "corp.example"
OWNER = f"_volact._tcp.{OWN_ZONE}"


def _owned_plan(
    fqdn: str, markers: tuple[Marker, ...], *, take_over: bool = False, **kw: Any
) -> UpdatePlan:
    return plan_publish(
        zone=OWN_ZONE, label="_volact._tcp", fqdn=fqdn, port=1688, priority=0, weight=0,
        ttl=60, addresses=("192.0.2.1",), existing_srv=(SrvValue(0, 0, 1688, fqdn),),
        ownership=Ownership(ME, markers, tuple(m.rdata() for m in markers)),
        take_over=take_over, **kw,
    )  # fmt: skip


@given(st.lists(st.binary(max_size=40), max_size=40))
def test_any_txt_strings_are_a_marker_or_none(strings: list[bytes]) -> None:
    m = Marker.from_strings(strings)
    if m is not None:
        assert Marker.from_strings([s.encode() for s in m.strings()]) == m


def test_a_marker_round_trips_and_foreign_txt_is_ignored() -> None:
    m = Marker(ME, "kms.corp.example", ("192.0.2.1", "2001:db8::1"))
    assert Marker.from_strings([s.encode() for s in m.strings()]) == m
    assert m.rdata() == f'"volact-owner" "{ME}" "kms.corp.example" "192.0.2.1" "2001:db8::1"'
    for bad in (["v=spf1 -all"], ["volact-owner", "xyz", "kms.corp.example"],
                ["volact-owner", ME, "KMS.corp.example"], ["volact-owner", ME, "k", "1.2.3"]):
        assert Marker.from_strings([s.encode() for s in bad]) is None  # fmt: skip


def test_a_name_another_host_owns_is_refused_and_taken_over_only_when_asked() -> None:
    fqdn = f"kms.{OWN_ZONE}"
    theirs = Marker(OTHER, fqdn, ("192.0.2.9",))
    with pytest.raises(NameOwned) as info:
        _owned_plan(fqdn, (theirs,))
    assert info.value.owner == OTHER and "--take-over" in str(info.value)

    plan = _owned_plan(fqdn, (theirs,), take_over=True)
    assert plan.taken_from == OTHER
    assert Change(OWNER, "TXT", theirs.rdata()) in plan.deletes
    assert Change(fqdn, "A", "192.0.2.9") in plan.deletes  # the old owner's address
    assert Change(OWNER, "TXT", Marker(ME, fqdn, ("192.0.2.1",)).rdata(), 60) in plan.adds
    assert plan.expect_txt == (theirs.rdata(),) and plan.marker_owner == OWNER


def test_old_records_under_a_name_another_host_owns_are_left() -> None:
    old, new = f"old.{OWN_ZONE}", f"new.{OWN_ZONE}"
    previous = Published(
        old,
        (Change(OWNER, "SRV", f"0 0 1688 {old}."), Change(old, "A", "192.0.2.1"),
         Change(old, "A", "192.0.2.7")),
    )  # fmt: skip
    theirs = Marker(OTHER, old, ("192.0.2.1",))
    mine = Marker(ME, old, ("192.0.2.1", "192.0.2.7"))
    plan = _owned_plan(new, (theirs, mine), previous=previous)
    removed = set(plan.deletes) | set(plan.cleanup)
    assert Change(OWNER, "SRV", f"0 0 1688 {old}.") not in removed  # theirs now
    assert Change(old, "A", "192.0.2.1") not in removed  # their marker lists it
    assert Change(old, "A", "192.0.2.7") in removed  # only ours
    assert plan.left == (f"{old} (now host {OTHER})",)
    assert "left records owned by another host" in plan.summary()

    gone = plan_unpublish(zone=OWN_ZONE, label="_volact._tcp", fqdn=old,
                          existing_srv=(SrvValue(0, 0, 1688, old),), previous=previous,
                          ownership=Ownership(ME, (theirs,), (theirs.rdata(),)))  # fmt: skip
    assert not any(c.rdtype == "SRV" for c in gone.deletes)
    assert Change(old, "A", "192.0.2.7") in gone.deletes + gone.cleanup
