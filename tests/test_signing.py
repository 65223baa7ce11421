"""Ed25519 keys: libsodium and OpenSSL agree, PEM files round-trip, passphrases."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from volact.errors import BadSignature, ConfigurationError
from volact.signing import SigningKey, verify


@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=300))
def test_libsodium_signs_exactly_like_openssl(seed: bytes, message: bytes) -> None:
    key = SigningKey.from_seed(seed)
    sig = key.sign(message)
    openssl = Ed25519PrivateKey.from_private_bytes(seed)
    assert sig == openssl.sign(message) and len(sig) == 64
    assert key.public_key == openssl.public_key().public_bytes_raw()
    verify(key.public_key, sig, message, "test")
    with pytest.raises(BadSignature):
        verify(key.public_key, sig, message + b"!", "test")


def test_pem_round_trip_with_and_without_passphrase() -> None:
    key = SigningKey.generate()
    plain = SigningKey.from_pem(key.to_pem())
    locked = SigningKey.from_pem(key.to_pem(b"secret"), b"secret")
    assert plain.public_key == locked.public_key == key.public_key
    assert plain.sign(b"m") == key.sign(b"m")
    with pytest.raises(ConfigurationError, match="wrong passphrase"):
        SigningKey.from_pem(key.to_pem(b"secret"), b"wrong")
    with pytest.raises(ConfigurationError, match="passphrase-protected"):
        SigningKey.from_pem(key.to_pem(b"secret"))
    with pytest.raises(ConfigurationError, match="not encrypted"):
        SigningKey.from_pem(key.to_pem(), b"secret")
    with pytest.raises(ConfigurationError):
        SigningKey.from_pem(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")


@given(seed=st.binary(min_size=32, max_size=32))
def test_key_files_are_the_pkcs8_openssl_writes_and_reads(seed: bytes) -> None:
    """The unencrypted PEM written by hand is byte for byte OpenSSL's (RFC 8410)."""
    key = SigningKey.from_seed(seed)
    openssl = Ed25519PrivateKey.from_private_bytes(seed)
    pem = openssl.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert key.to_pem() == pem
    assert SigningKey.from_pem(pem).public_key == key.public_key
    loaded = serialization.load_pem_private_key(key.to_pem(), password=None)
    assert isinstance(loaded, Ed25519PrivateKey)
    assert loaded.public_key().public_bytes_raw() == key.public_key


def test_damaged_key_files_are_refused_clearly() -> None:
    pem = SigningKey.from_seed(bytes(32)).to_pem()
    lines = pem.splitlines()
    for bad, message in (
        (b"", "not a PEM private key"),
        (pem.replace(b"MC4C", b"MC5C"), "does not hold an Ed25519 key"),
        (lines[0] + b"\n!!!!\n" + lines[2], "damaged"),
        (lines[0] + b"\n" + lines[1][:-4] + b"\n" + lines[2], "Ed25519 key|damaged"),
    ):
        with pytest.raises(ConfigurationError, match=message):
            SigningKey.from_pem(bad)


def test_verify_refuses_wrong_lengths_without_a_foreign_exception() -> None:
    key = SigningKey.from_seed(bytes(32))
    sig = key.sign(b"m")
    for public, signature in ((key.public_key[:31], sig), (key.public_key, sig[:63]), (b"", b"")):
        with pytest.raises(BadSignature):
            verify(public, signature, b"m", "test")
