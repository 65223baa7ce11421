"""Ed25519 keys: libsodium and OpenSSL agree, PEM files round-trip, passphrases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from volact.errors import BadSignature, ConfigurationError
from volact.signing import SigningKey, verify


@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=300))
def test_libsodium_signs_exactly_like_openssl(seed: bytes, message: bytes) -> None:
    key = SigningKey.from_seed(seed)
    sig = key.sign(message)
    assert sig == key.sign_reference(message) and len(sig) == 64
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
