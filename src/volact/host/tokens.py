"""Access tokens for the host's console (``volact host token create|list|revoke``).

A token is 32 random bytes shown once, when it is created; the home keeps only
its SHA-256 (tokens are random, so a plain hash cannot be reversed by guessing)
in ``console-tokens.json``, mode 0600. Checking a token hashes it and compares
the hash with every stored one in constant time, so neither the result nor the
time taken tells an attacker how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volact.errors import ConfigurationError, UsageError
from volact.files import write_atomic

TOKENS_FILE = "console-tokens.json"
TOKENS_FORMAT = "volact-console-tokens"
#: Every token starts with this, so that a leaked one is easy to recognise (and grep for).
PREFIX = "vat_"
MAX_NAME = 64


@dataclass(frozen=True)
class TokenRecord:
    """One stored token: never the token itself, only its hash."""

    id: str
    name: str
    created_at: int
    sha256: str

    def public(self) -> dict[str, Any]:
        """What ``token list`` shows: everything but the hash."""
        return {"id": self.id, "name": self.name, "created_at": self.created_at}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def load(home: Path) -> list[TokenRecord]:
    """The stored tokens (none when the file does not exist yet)."""
    path = home / TOKENS_FILE
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not a volact token file: {exc}") from exc
    try:
        if obj["format"] != TOKENS_FORMAT:
            raise ValueError(obj["format"])
        return [
            TokenRecord(str(t["id"]), str(t["name"]), int(t["created_at"]), str(t["sha256"]))
            for t in obj["tokens"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"{path} is not a volact token file ({exc!r})") from None


def _save(home: Path, records: list[TokenRecord]) -> None:
    obj = {
        "format": TOKENS_FORMAT,
        "tokens": [
            {"id": r.id, "name": r.name, "created_at": r.created_at, "sha256": r.sha256}
            for r in records
        ],
    }
    write_atomic(home / TOKENS_FILE, json.dumps(obj, indent=2) + "\n", mode=0o600)


def create(home: Path, name: str, *, now: int) -> tuple[TokenRecord, str]:
    """A new token: its record (stored) and the token (returned once, never stored)."""
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise UsageError(f"a token name is 1-{MAX_NAME} printable characters")
    records = load(home)
    token = PREFIX + secrets.token_urlsafe(32)
    ids = {r.id for r in records}
    tid = secrets.token_hex(4)
    while tid in ids:
        tid = secrets.token_hex(4)
    record = TokenRecord(tid, name, now, _digest(token))
    _save(home, [*records, record])
    return record, token


def revoke(home: Path, token_id: str) -> TokenRecord:
    """Remove the token with this id; a clear error when there is none."""
    records = load(home)
    keep = [r for r in records if r.id != token_id]
    if len(keep) == len(records):
        raise UsageError(f"no token with id {token_id!r} (see `volact host token list`)")
    _save(home, keep)
    return next(r for r in records if r.id == token_id)


def check(records: list[TokenRecord], token: str) -> TokenRecord | None:
    """The record ``token`` matches, or None; constant time in the token's value."""
    digest = _digest(token)
    found: TokenRecord | None = None
    for r in records:
        # Compare with every record (no early exit) so the time does not say which matched.
        if hmac.compare_digest(digest, r.sha256):
            found = r
    return found


__all__ = ["PREFIX", "TOKENS_FILE", "TokenRecord", "check", "create", "load", "revoke"]
