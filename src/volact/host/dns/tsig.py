"""The TSIG key that signs the host's updates, parsed from BIND's key-file text.

No I/O: :mod:`volact.host.dns.files` reads the file. The secret never appears in a
``repr`` nor in an error message.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from volact.addresses import normalize_name
from volact.errors import ConfigurationError

#: TSIG algorithms BIND and dnspython both know (``tsig-keygen -a``).
TSIG_ALGORITHMS = frozenset(
    {
        "hmac-md5",
        "hmac-md5.sig-alg.reg.int",
        "hmac-sha1",
        "hmac-sha224",
        "hmac-sha256",
        "hmac-sha384",
        "hmac-sha512",
    }
)


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key as BIND writes it; the secret never appears in ``repr``."""

    name: str  #: key name (a DNS name, normalized)
    algorithm: str  #: e.g. ``hmac-sha256``
    secret: bytes = field(repr=False)  #: the shared secret (decoded)

    def secret_b64(self) -> str:
        return base64.b64encode(self.secret).decode("ascii")


# One left-to-right scan, so that comment markers inside a quoted secret (base64 may
# contain "//") stay part of the string: whitespace, the three comment forms BIND
# accepts, a quoted string, punctuation, or a bare word.
_TOKEN_RE = re.compile(
    r'\s+|/\*.*?\*/|//[^\n]*|#[^\n]*|"(?:[^"\\]|\\.)*"|[{};]|(?:[^\s{};"#/]|/(?![/*]))+',
    re.S,
)


def _tokens(text: str) -> list[tuple[str, int]]:
    """The tokens of ``text``, each with its 1-based line number."""
    out: list[tuple[str, int]] = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ConfigurationError(
                f"TSIG key file line {line}: unterminated quoted string or comment"
            )
        tok = m.group(0)
        pos = m.end()
        if not (tok.isspace() or tok.startswith(("/*", "//", "#"))):
            out.append((tok, line))
        line += tok.count("\n")
    return out


def _unquote(tok: str) -> str:
    return tok[1:-1] if len(tok) >= 2 and tok[0] == tok[-1] == '"' else tok


def parse_bind_key(text: str) -> TsigKey:
    """The one ``key "name" { algorithm ...; secret "..."; };`` in ``text`` (tsig-keygen's format).

    Error messages say what was expected and on which line, and never quote any
    token of the file: a malformed file may hold the secret anywhere (or be just the
    secret), and these messages end up in status output, state files and events.
    """
    toks = _tokens(text)
    end_line = text.count("\n") + 1

    def fail(at: int, what: str) -> ConfigurationError:
        line = toks[at][1] if at < len(toks) else end_line
        return ConfigurationError(f"TSIG key file line {line}: {what}")

    keys: list[TsigKey] = []
    i = 0
    while i < len(toks):
        if toks[i][0].lower() != "key":
            raise fail(i, "expected 'key \"NAME\" {' (tsig-keygen's output)")
        start = i
        if i + 2 >= len(toks) or toks[i + 2][0] != "{":
            raise fail(min(i + 2, len(toks)), "expected 'key \"NAME\" {'")
        try:
            name = normalize_name(_unquote(toks[i + 1][0]), "TSIG key name")
        except ConfigurationError:
            raise fail(i + 1, "the key name is not a DNS name") from None
        i += 3
        algorithm: str | None = None
        secret: bytes | None = None
        while True:
            if i >= len(toks):
                raise fail(start, "this key is not closed with '};'")
            if toks[i][0] == "}":
                i += 1
                if i < len(toks) and toks[i][0] == ";":
                    i += 1
                break
            if i + 2 >= len(toks) or toks[i + 2][0] != ";":
                raise fail(i, "expected 'algorithm NAME;', 'secret \"BASE64\";' or '};'")
            stmt, value = toks[i][0].lower(), _unquote(toks[i + 1][0])
            if stmt == "algorithm":
                algorithm = value.lower().rstrip(".")
                if algorithm not in TSIG_ALGORITHMS:
                    raise fail(
                        i + 1,
                        f"unknown algorithm (one of {', '.join(sorted(TSIG_ALGORITHMS))})",
                    )
            elif stmt == "secret":
                try:
                    secret = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    raise fail(i + 1, "the secret is not valid base64") from None
                if not secret:
                    raise fail(i + 1, "the secret is empty")
            else:
                raise fail(i, "unknown statement (expected 'algorithm' or 'secret')")
            i += 3
        if algorithm is None:
            raise fail(start, "the key has no 'algorithm' statement")
        if secret is None:
            raise fail(start, "the key has no 'secret' statement")
        keys.append(TsigKey(name, algorithm, secret))
    if not keys:
        raise ConfigurationError("TSIG key file holds no key (expected tsig-keygen's output)")
    if len(keys) > 1:
        raise ConfigurationError(
            f"TSIG key file holds {len(keys)} keys; put the host's one key in a file of its own"
        )
    return keys[0]
