"""The one exception tree of volact.

Every error volact raises derives from :class:`VolactError`, split by whose fault
it is::

    VolactError
    ├── DecodeError          the peer (or a file) sent bytes that are not ours
    │   └── NotVolactError   the peer speaks another protocol altogether (e.g. HTTP)
    ├── KeyFormatError       a product key is mistyped (checksum, alphabet, length)
    │   └── UnknownKeyError  a well-formed key that nobody issued
    ├── VerificationError    a signature or a binding failed (one subclass a reason)
    ├── ConfigurationError   a setting, file or home directory is wrong
    │   ├── AddressError     a host name, HOST:PORT, IP address or service label
    │   └── NameOwned        a DNS name another volact host publishes
    ├── UsageError           the caller misused the API
    │   └── InvalidValue     a constructor got a value it does not allow (a ValueError too)
    ├── StoreError           a durable store is corrupt, locked or unreadable
    ├── CountFull            the host counts as many machines as it may
    └── TransportError       the network failed (timeouts, refused, reset)

Foreign exceptions (``OSError``, ``sqlite3.Error``, ``dns.exception.DNSException``)
are translated into this tree at the adapter that meets them; the core never sees
them. This module has no I/O and no imports beyond the standard library.
"""

from __future__ import annotations


class VolactError(Exception):
    """Root of every error volact raises on purpose."""

    #: A stable machine-readable code (used by ``--json`` output and HTTP problems).
    code: str = "error"


class DecodeError(VolactError):
    """Bytes that do not decode as the structure expected (short, long, malformed)."""

    code = "malformed"


class NotVolactError(DecodeError):
    """The peer plainly speaks another protocol (an HTTP server on the host's port)."""

    code = "not_volact"


class KeyFormatError(VolactError):
    """A product key that is mistyped: wrong length, alphabet or checksum."""

    code = "mistyped_key"

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        #: 0-based index among the 25 key characters where the error is, if known.
        self.position = position


class UnknownKeyError(VolactError):
    """A well-formed key that is not known where it was presented."""

    code = "unknown_key"


class VerificationError(VolactError):
    """A signed document or a reply that must not be trusted."""

    code = "verification_failed"


class BadSignature(VerificationError):
    """The Ed25519 signature does not verify."""

    code = "bad_signature"


class UnknownVendor(VerificationError):
    """The document is signed by a key other than the profile's vendor key."""

    code = "unknown_vendor"


class WrongMachine(VerificationError):
    """The ticket or confirmation names another machine (CMID)."""

    code = "wrong_cmid"


class WrongNonce(VerificationError):
    """The ticket answers a request other than the one this client sent (replay)."""

    code = "wrong_nonce"


class SkuNotCovered(VerificationError):
    """The host license does not cover the ticket's SKU."""

    code = "sku_not_covered"


class Expired(VerificationError):
    """The document is past its expiry (or not yet valid)."""

    code = "expired"


class Revoked(VerificationError):
    """The vendor has revoked the host or its host key."""

    code = "revoked"


class WrongHost(VerificationError):
    """The ticket was signed by a host other than the one whose license was given."""

    code = "wrong_host"


class ConfigurationError(VolactError):
    """A setting, profile, key file or home directory is missing or wrong."""

    code = "configuration"


class AddressError(ConfigurationError):
    """A host name, ``HOST:PORT``, IP address or DNS service label that does not parse.

    The one error of :mod:`volact.addresses`, whichever setting the text came from;
    its ``code`` stays ``configuration``, as scripts read it.
    """


class UsageError(VolactError):
    """The caller used the API in a way it does not allow."""

    code = "usage"


class InvalidValue(UsageError, ValueError):
    """A constructor was given a value its invariants do not allow.

    Also a ``ValueError``, as Python's own constructors raise, so code written
    against either keeps working; its ``code`` stays ``usage``.
    """


class StoreError(VolactError):
    """A durable store is corrupt, locked by another process, or unreadable."""

    code = "store"


class CountFull(VolactError):
    """The host's count holds as many machines as it may: a new one is not counted."""

    code = "count_full"


class TransportError(VolactError):
    """The network failed: no answer, connection refused or reset, timeout."""

    code = "transport"


class NameOwned(ConfigurationError):
    """A DNS name this host would publish is owned by another volact host (its marker)."""

    def __init__(self, message: str, *, owner: str) -> None:
        super().__init__(message)
        #: the host id (hex) that owns the name
        self.owner = owner
