"""Product keys: 25 characters in five groups of five, with a checksum.

A key encodes, as one integer in base 27 over an alphabet with no look-alikes
(no 0/O, 1/I/L, 5/S, U/V), 98 bits of payload (2 bits of kind, 96 bits of
serial) and a 20-bit checksum. A mistyped key is refused here, before any network
is touched, and where a single wrong or swapped character explains the error the
message says which one. Whether a well-formed key was ever *issued* is a question
for whoever holds the key list (the profile for GVLKs, the authority otherwise).

No I/O, no clock; randomness comes from the caller.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from volact.errors import InvalidValue, KeyFormatError

ALPHABET = "2346789ABCDEFGHJKMNPQRTWXYZ"
BASE = len(ALPHABET)
KEY_CHARS = 25
GROUP_CHARS = 5
SERIAL_BYTES = 12
CHECKSUM_BITS = 20
_KIND_BITS = 2
_PAYLOAD_BITS = _KIND_BITS + SERIAL_BYTES * 8
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
# Characters people type for ones we left out, to say so in the error.
_LOOKALIKES = {
    "0": "O/0",
    "O": "O/0",
    "1": "1/I/L",
    "I": "1/I/L",
    "L": "1/I/L",
    "5": "5/S",
    "S": "5/S",
    "U": "U/V",
    "V": "U/V",
}

assert BASE == 27 and BASE**KEY_CHARS > 1 << (_PAYLOAD_BITS + CHECKSUM_BITS)


class KeyKind(enum.IntEnum):
    """What a key is for."""

    GVLK = 0  #: public setup key of one SKU; selects activation by a host
    MAK = 1  #: multiple-activation key, activated with the authority
    HOST = 2  #: host key: activates key management hosts for product groups

    @property
    def label(self) -> str:
        return {KeyKind.GVLK: "gvlk", KeyKind.MAK: "mak", KeyKind.HOST: "host"}[self]

    @classmethod
    def from_label(cls, label: str) -> KeyKind:
        for kind in cls:
            if kind.label == label.lower():
                return kind
        raise InvalidValue(f"unknown key kind {label!r} (expected gvlk, mak or host)")


def _checksum(kind: int, serial: bytes) -> int:
    digest = hashlib.sha256(b"volact-key\x00" + bytes([kind]) + serial).digest()
    return int.from_bytes(digest[:4], "big") >> (32 - CHECKSUM_BITS)


@dataclass(frozen=True)
class ProductKey:
    """A well-formed product key (its checksum holds)."""

    kind: KeyKind  #: GVLK, MAK or host key
    serial: bytes  #: 12 random bytes; the key's identity at the authority

    def __post_init__(self) -> None:
        if len(self.serial) != SERIAL_BYTES:
            raise InvalidValue(f"a key serial is {SERIAL_BYTES} bytes, not {len(self.serial)}")

    @property
    def key_id(self) -> bytes:
        """The identity a signed document uses for this key (its serial)."""
        return self.serial

    @property
    def text(self) -> str:
        n = (self.kind << (SERIAL_BYTES * 8)) | int.from_bytes(self.serial, "big")
        n = (n << CHECKSUM_BITS) | _checksum(self.kind, self.serial)
        chars = []
        for _ in range(KEY_CHARS):
            n, d = divmod(n, BASE)
            chars.append(ALPHABET[d])
        s = "".join(reversed(chars))
        return "-".join(s[i : i + GROUP_CHARS] for i in range(0, KEY_CHARS, GROUP_CHARS))

    def __str__(self) -> str:
        return self.text

    @property
    def masked(self) -> str:
        """The key with all but its last group hidden, for logs and status."""
        return "XXXXX-XXXXX-XXXXX-XXXXX-" + self.text[-GROUP_CHARS:]

    @classmethod
    def generate(cls, kind: KeyKind, random_bytes: bytes) -> ProductKey:
        """A new key of ``kind`` from 12 bytes of caller-supplied randomness."""
        return cls(kind, random_bytes)

    @classmethod
    def derive_gvlk(cls, vendor_public_key: bytes, sku_id: bytes) -> ProductKey:
        """The deterministic public setup key of a SKU for one vendor."""
        serial = hashlib.sha256(b"volact-gvlk\x00" + vendor_public_key + sku_id).digest()
        return cls(KeyKind.GVLK, serial[:SERIAL_BYTES])

    @classmethod
    def parse(cls, text: str, *, locate: bool = True) -> ProductKey:
        """Parse a typed key; raise :class:`KeyFormatError` saying what is wrong.

        On a checksum failure the typo is located by trying every single
        substitution and swap (about 900 candidates, milliseconds of CPU); a
        service parsing keys from strangers passes ``locate=False`` past a budget.
        """
        chars = _normalise(text)
        value = _decode_digits(chars)
        key = _from_value(value)
        if key is not None:
            return key
        if not locate:
            raise KeyFormatError(CHECKSUM_FAILS)
        found = _candidates(chars)
        if len(found) == 1:
            i = found[0][0]
            raise KeyFormatError(
                f"the key is mistyped: its checksum fails; character {i + 1} "
                f"(group {i // GROUP_CHARS + 1}, {chars[i]!r}) looks wrong",
                position=i,
            )
        raise KeyFormatError(CHECKSUM_FAILS)


#: What a checksum failure says when the typo is not located.
CHECKSUM_FAILS = (
    "the key is mistyped: its checksum fails; check every group against the original"
)


def _normalise(text: str) -> str:
    if not isinstance(text, str):
        raise KeyFormatError("a product key must be text")
    s = "".join(text.split()).replace("-", "").upper()
    if len(s) != KEY_CHARS:
        raise KeyFormatError(
            f"a product key has {KEY_CHARS} characters in five groups of five "
            f"(XXXXX-XXXXX-XXXXX-XXXXX-XXXXX); this one has {len(s)}"
        )
    for i, c in enumerate(s):
        if c not in _INDEX:
            hint = (
                f" ({_LOOKALIKES[c]} are never used in keys: check the key's print)"
                if c in _LOOKALIKES
                else ""
            )
            raise KeyFormatError(
                f"the key is mistyped: character {i + 1} ({c!r}, group {i // GROUP_CHARS + 1})"
                f" is not a key character{hint}",
                position=i,
            )
    return s


def _decode_digits(chars: str) -> int:
    n = 0
    for c in chars:
        n = n * BASE + _INDEX[c]
    return n


def _from_value(n: int) -> ProductKey | None:
    if n >> (_PAYLOAD_BITS + CHECKSUM_BITS):
        return None
    check = n & ((1 << CHECKSUM_BITS) - 1)
    payload = n >> CHECKSUM_BITS
    kind = payload >> (SERIAL_BYTES * 8)
    serial = (payload & ((1 << (SERIAL_BYTES * 8)) - 1)).to_bytes(SERIAL_BYTES, "big")
    if kind not in {k.value for k in KeyKind} or _checksum(kind, serial) != check:
        return None
    return ProductKey(KeyKind(kind), serial)


def _candidates(chars: str) -> list[tuple[int, str]]:
    """(position, corrected key) for each single substitution or swap that checks."""
    # Each candidate's value is the typed value plus one digit's difference times
    # its place value, so the ~900 candidates cost one check each, not a decode.
    value = _decode_digits(chars)
    digits = [_INDEX[c] for c in chars]
    place = [BASE ** (KEY_CHARS - 1 - i) for i in range(KEY_CHARS)]
    found: list[tuple[int, str]] = []
    for i in range(KEY_CHARS):
        for d, c in enumerate(ALPHABET):
            if d != digits[i] and _from_value(value + (d - digits[i]) * place[i]) is not None:
                found.append((i, chars[:i] + c + chars[i + 1 :]))
    for i in range(KEY_CHARS - 1):
        a, b = digits[i], digits[i + 1]
        swapped = value + (b - a) * place[i] + (a - b) * place[i + 1]
        if a != b and _from_value(swapped) is not None:
            found.append((i, chars[:i] + chars[i + 1] + chars[i] + chars[i + 2 :]))
    return found
