"""Ed25519 keys: generation, signing, verifying, fingerprints, and PEM key files.

All signing, verifying and key generation goes through libsodium (PyNaCl): it signs
a ticket body in about 19 µs here against OpenSSL's 34 µs (a host signs one ticket
per grant: a seventh of its CPU per exchange) and verifies in half OpenSSL's time
(bench/crypto_libs.py; docs/architecture.md, "Crypto"). The rest of volact handles
raw 32-byte public keys and never sees a library's types.

Key files are PKCS#8 PEM (RFC 8410), the format OpenSSL and key-management tools
read. An unencrypted file (a host's signing key) is a fixed 48-byte DER structure,
read and written here. A passphrase-protected file (the vendor root key) uses
PKCS#8 encryption (PBES2, AES), which libsodium does not offer: those go through
``cryptography``, imported only for them, which the ``authority`` extra installs.
No file I/O here: callers read and write the bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import secrets

from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import CryptoError

try:  # libsodium's crypto_sign as PyNaCl binds it (nacl.bindings.crypto_sign wraps it)
    from nacl._sodium import ffi as _ffi  # type: ignore[import-not-found]
    from nacl._sodium import lib as _lib
except ImportError:  # pragma: no cover - every PyNaCl release so far has the module
    _ffi = _lib = None

from volact.errors import BadSignature, ConfigurationError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32
KEY_ID_BYTES = 8

#: RFC 8410 §7: a PKCS#8 v1 OneAsymmetricKey, algorithm id-Ed25519 (1.3.101.112),
#: holding the 32-byte seed as an OCTET STRING. Every unencrypted Ed25519 key file
#: OpenSSL writes is these 16 bytes and the seed.
PKCS8_ED25519_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN = b"-----BEGIN PRIVATE KEY-----"
_PEM_END = b"-----END PRIVATE KEY-----"
_PEM_ENCRYPTED = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


def key_id(public_key: bytes) -> bytes:
    """The short fingerprint documents carry to name the key that signed them."""
    return hashlib.sha256(b"volact-key-id\x00" + public_key).digest()[:KEY_ID_BYTES]


class SigningKey:
    """An Ed25519 private key."""

    __slots__ = ("_seed", "_sodium_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise ConfigurationError(f"an Ed25519 private key is {SEED_BYTES} bytes")
        public_key, sodium_key = crypto_sign_seed_keypair(seed)
        self._seed = seed
        self._sodium_key: bytes = sodium_key
        #: the raw 32-byte public key
        self.public_key: bytes = public_key

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(secrets.token_bytes(SEED_BYTES))

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """A deterministic key (test vectors only)."""
        return cls(seed)

    @property
    def key_id(self) -> bytes:
        return key_id(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        if _lib is None:  # pragma: no cover
            return crypto_sign(message, self._sodium_key)[:SIGNATURE_BYTES]
        # The call PyNaCl's crypto_sign makes, without its second buffer, its checks
        # and its copy of the whole signed message: a host signs one ticket per grant.
        n = len(message)
        out = _ffi.new("unsigned char[]", n + SIGNATURE_BYTES)
        if _lib.crypto_sign(out, _ffi.NULL, message, n, self._sodium_key) != 0:
            raise CryptoError("libsodium could not sign")  # pragma: no cover
        return _ffi.buffer(out, SIGNATURE_BYTES)[:]  # type: ignore[no-any-return]

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """The key as a PKCS#8 PEM file, encrypted with ``passphrase`` when given."""
        if not passphrase:
            body = base64.b64encode(PKCS8_ED25519_PREFIX + self._seed)
            return _PEM_BEGIN + b"\n" + body + b"\n" + _PEM_END + b"\n"
        _need_cryptography()
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        key = ed25519.Ed25519PrivateKey.from_private_bytes(self._seed)
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> SigningKey:
        """Read a PKCS#8 PEM key file (encrypted ones need ``passphrase``)."""
        text = data.strip()
        if text.startswith(_PEM_ENCRYPTED):
            if not passphrase:
                raise ConfigurationError(
                    "the key file is passphrase-protected: give --passphrase-file"
                )
            return cls._from_encrypted_pem(data, passphrase)
        if not (text.startswith(_PEM_BEGIN) and text.endswith(_PEM_END)):
            raise ConfigurationError("the key file is not a PEM private key (PKCS#8)")
        if passphrase:
            raise ConfigurationError("the key file is not encrypted but a passphrase was given")
        try:
            der = base64.b64decode(
                b"".join(text[len(_PEM_BEGIN) : -len(_PEM_END)].split()), validate=True
            )
        except (binascii.Error, ValueError) as exc:
            raise ConfigurationError("cannot read the private key: a damaged key file") from exc
        prefix = PKCS8_ED25519_PREFIX
        if len(der) != len(prefix) + SEED_BYTES or not der.startswith(prefix):
            raise ConfigurationError("the key file does not hold an Ed25519 key (PKCS#8 v1)")
        return cls(der[len(prefix) :])

    @classmethod
    def _from_encrypted_pem(cls, data: bytes, passphrase: bytes) -> SigningKey:
        _need_cryptography()
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                "cannot read the private key: wrong passphrase or a damaged key file"
            ) from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ConfigurationError("the key file does not hold an Ed25519 key")
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls(seed)


def _need_cryptography() -> None:
    """Passphrase-protected key files need ``cryptography`` (the authority extra)."""
    if importlib.util.find_spec("cryptography") is None:
        raise ConfigurationError(
            "passphrase-protected key files need the cryptography package: "
            "pip install 'volact[authority]'"
        )


def verify(public_key: bytes, signature: bytes, message: bytes, what: str) -> None:
    """Raise :class:`BadSignature` unless ``signature`` is ``public_key``'s over ``message``."""
    if len(signature) != SIGNATURE_BYTES or len(public_key) != PUBLIC_KEY_BYTES:
        raise BadSignature(f"{what}: the signature does not verify")
    try:
        crypto_sign_open(signature + message, public_key)
    except (CryptoError, ValueError) as exc:
        raise BadSignature(f"{what}: the signature does not verify") from exc
