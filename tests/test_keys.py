"""Product keys: format, checksum, typo location, kinds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from volact.errors import KeyFormatError
from volact.keys import ALPHABET, KEY_CHARS, KeyKind, ProductKey


def test_alphabet_has_no_lookalikes() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 27
    for c in "0O1IL5SUV":
        assert c not in ALPHABET


@given(st.sampled_from(list(KeyKind)), st.binary(min_size=12, max_size=12))
def test_round_trip(kind: KeyKind, serial: bytes) -> None:
    key = ProductKey(kind, serial)
    text = key.text
    groups = text.split("-")
    assert len(groups) == 5 and all(len(g) == 5 for g in groups)
    assert set(text.replace("-", "")) <= set(ALPHABET)
    assert ProductKey.parse(text) == key
    # Typing style does not matter: lower case, spaces, no dashes.
    assert ProductKey.parse(text.lower().replace("-", " ")) == key
    assert ProductKey.parse(text.replace("-", "")) == key


@given(
    st.sampled_from(list(KeyKind)),
    st.binary(min_size=12, max_size=12),
    st.integers(0, KEY_CHARS - 1),
    st.integers(1, len(ALPHABET) - 1),
)
def test_any_single_substitution_is_refused_and_located(
    kind: KeyKind, serial: bytes, pos: int, shift: int
) -> None:
    chars = ProductKey(kind, serial).text.replace("-", "")
    wrong = ALPHABET[(ALPHABET.index(chars[pos]) + shift) % len(ALPHABET)]
    typo = chars[:pos] + wrong + chars[pos + 1 :]
    with pytest.raises(KeyFormatError) as info:
        ProductKey.parse(typo)
    assert "mistyped" in str(info.value)
    # Where exactly one correction explains the typo, it is the one we made.
    if info.value.position is not None:
        assert info.value.position == pos


def test_typo_message_names_the_character() -> None:
    chars = ProductKey(KeyKind.MAK, bytes(range(12))).text.replace("-", "")
    pos = 12
    wrong = ALPHABET[(ALPHABET.index(chars[pos]) + 5) % len(ALPHABET)]
    with pytest.raises(KeyFormatError) as info:
        ProductKey.parse(chars[:pos] + wrong + chars[pos + 1 :])
    assert info.value.position == pos
    assert "character 13" in str(info.value) and "group 3" in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "25 characters"),
        ("ABCDE-ABCDE", "this one has 10"),
        ("ABCDE-ABCDE-ABCDE-ABCDE-ABCD0", "character 25"),
        ("ABCDE-ABCDE-ABCDE-ABCDE-ABCDS", "never used"),
        ("ABCDE-ABCDE-ABCDE-ABCDE-ABCD!", "not a key character"),
    ],
)
def test_malformed_keys_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(KeyFormatError, match=fragment):
        ProductKey.parse(text)


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_key_format_error(text: str) -> None:
    try:
        key = ProductKey.parse(text)
    except KeyFormatError:
        return
    assert ProductKey.parse(key.text) == key


def test_gvlk_is_deterministic_per_vendor_and_sku() -> None:
    a = ProductKey.derive_gvlk(b"v" * 32, b"s" * 16)
    assert a == ProductKey.derive_gvlk(b"v" * 32, b"s" * 16)
    assert a.kind is KeyKind.GVLK
    assert a != ProductKey.derive_gvlk(b"w" * 32, b"s" * 16)
    assert a != ProductKey.derive_gvlk(b"v" * 32, b"t" * 16)


def test_masked_hides_all_but_last_group() -> None:
    key = ProductKey(KeyKind.HOST, bytes(12))
    assert key.masked.startswith("XXXXX-XXXXX-XXXXX-XXXXX-")
    assert key.masked[-5:] == key.text[-5:]


def test_kind_labels() -> None:
    for kind in KeyKind:
        assert KeyKind.from_label(kind.label) is kind
    with pytest.raises(ValueError, match="unknown key kind"):
        KeyKind.from_label("retail")
