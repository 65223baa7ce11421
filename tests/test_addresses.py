"""`HOST[:PORT]` parsing wherever a person types one: clear errors, never a crash."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from volact.client.srv import HostAddress
from volact.errors import ConfigurationError
from volact.host.config import parse_listen
from volact.host.dns_settings import ServerAddress


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
