"""`HOST[:PORT]` parsing wherever a person types one: clear errors, never a crash."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from volact.cli import main
from volact.client.srv import HostAddress
from volact.errors import ConfigurationError
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
    assert main(["host", "activate", "--home", str(home), "--authority", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("volact: error:") and "URL" in err and "internal error" not in err


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
