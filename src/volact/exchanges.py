"""The JSON documents exchanged with the vendor's authority, online or by file.

The same objects travel as HTTP bodies (``POST /v1/hosts/activate``,
``POST /v1/mak/activate``, ``POST /v1/mak/batch``) and as files carried to and
from a disconnected network, so one parser serves both. Each has a ``format``
tag so a file given to the wrong command is refused with a clear message.
No I/O: callers read and write the text.
"""

from __future__ import annotations

import base64
import binascii
import json
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from volact.errors import ConfigurationError
from volact.keys import ProductKey

FORMAT_VERSION = 1


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(s), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(f"{what} is not valid base64") from exc


def _unhex(s: Any, n: int, what: str) -> bytes:
    try:
        b = bytes.fromhex(str(s))
    except ValueError as exc:
        raise ConfigurationError(f"{what} is not hexadecimal") from exc
    if len(b) != n:
        raise ConfigurationError(f"{what} must be {n} bytes")
    return b


def _object(text: str | bytes | dict[str, Any], fmt: str, what: str) -> dict[str, Any]:
    if isinstance(text, dict):
        obj = text
    else:
        try:
            obj = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ConfigurationError(f"{what} must be a JSON object")
    if obj.get("format") != fmt:
        raise ConfigurationError(
            f"this is not a {what} (format {obj.get('format')!r}, expected {fmt!r})"
        )
    version = obj.get("version")
    # An integer, exactly: JSON's true (and 1.0) compare equal to 1 in Python.
    if type(version) is not int or version != FORMAT_VERSION:
        raise ConfigurationError(f"{what} version {version!r} is not supported")
    return obj


def _text(value: Any, name: str, limit: int) -> str:
    """A free-text field (a host or machine name): a string without control characters.

    The names go into the vendor's store and onto its screens: PostgreSQL refuses
    NUL, no database encodes a lone surrogate, and a terminal obeys control codes.
    """
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise ConfigurationError(
                f"{name} contains the control character U+{ord(ch):04X}; "
                "send the name as printable text"
            )
    return value[:limit]


def _field(obj: dict[str, Any], name: str, what: str) -> Any:
    if name not in obj:
        raise ConfigurationError(f"{what} lacks the field {name!r}")
    return obj[name]


@dataclass(frozen=True)
class HostActivationRequest:
    """A host asking the authority for a host license."""

    FORMAT = "volact-host-activation-request"

    host_key: str  #: the host key as typed (checked with :meth:`ProductKey.parse`)
    host_id: bytes  #: 8 bytes, stable for this host (reactivations reuse it)
    host_public_key: bytes  #: the host's Ed25519 public key (32 bytes)
    hostname: str  #: the host's FQDN, for the vendor's records

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.FORMAT,
            "version": FORMAT_VERSION,
            "host_key": self.host_key,
            "host_id": self.host_id.hex(),
            "host_public_key": _b64(self.host_public_key),
            "hostname": self.hostname,
        }

    @classmethod
    def from_json(cls, text: str | bytes | dict[str, Any]) -> HostActivationRequest:
        what = "host activation request"
        obj = _object(text, cls.FORMAT, what)
        pub = _unb64(_field(obj, "host_public_key", what), "host_public_key")
        if len(pub) != 32:
            raise ConfigurationError("host_public_key must be 32 bytes")
        return cls(
            host_key=str(_field(obj, "host_key", what)),
            host_id=_unhex(_field(obj, "host_id", what), 8, "host_id"),
            host_public_key=pub,
            hostname=_text(obj.get("hostname", ""), "hostname", 255),
        )

    def parsed_key(self) -> ProductKey:
        return ProductKey.parse(self.host_key)


@dataclass(frozen=True)
class HostActivationResponse:
    """The authority's answer: a vendor-signed host license."""

    FORMAT = "volact-host-activation-response"

    host_license: bytes  #: the signed host license document

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.FORMAT,
            "version": FORMAT_VERSION,
            "host_license": _b64(self.host_license),
        }

    @classmethod
    def from_json(cls, text: str | bytes | dict[str, Any]) -> HostActivationResponse:
        what = "host activation response"
        obj = _object(text, cls.FORMAT, what)
        return cls(_unb64(_field(obj, "host_license", what), "host_license"))


@dataclass(frozen=True)
class MakRequest:
    """One machine asking to be activated with a MAK."""

    FORMAT = "volact-mak-request"

    mak: str  #: the MAK as typed
    cmid: uuid.UUID  #: the machine
    sku: uuid.UUID  #: the SKU installed
    installation_id: bytes  #: ``documents.installation_id(cmid, sku)``
    workstation: str = ""  #: the machine's name, for the vendor's records

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.FORMAT,
            "version": FORMAT_VERSION,
            "mak": self.mak,
            "cmid": str(self.cmid),
            "sku": str(self.sku),
            "installation_id": self.installation_id.hex(),
            "workstation": self.workstation,
        }

    @classmethod
    def from_json(cls, text: str | bytes | dict[str, Any]) -> MakRequest:
        what = "MAK activation request"
        obj = _object(text, cls.FORMAT, what)
        try:
            cmid = uuid.UUID(str(_field(obj, "cmid", what)))
            sku = uuid.UUID(str(_field(obj, "sku", what)))
        except ValueError as exc:
            raise ConfigurationError(f"{what}: cmid and sku must be UUIDs") from exc
        return cls(
            mak=str(_field(obj, "mak", what)),
            cmid=cmid,
            sku=sku,
            installation_id=_unhex(_field(obj, "installation_id", what), 16, "installation_id"),
            workstation=_text(obj.get("workstation", ""), "workstation", 63),
        )


@dataclass(frozen=True)
class MakResponse:
    """The authority's answer for one machine: a confirmation, or an error."""

    FORMAT = "volact-mak-response"

    cmid: uuid.UUID  #: the machine this answers
    confirmation: bytes | None  #: the vendor-signed MAK confirmation, if granted
    error_code: str | None = None  #: stable code when refused (e.g. ``exhausted_key``)
    error_detail: str | None = None  #: a sentence for a person

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "format": self.FORMAT,
            "version": FORMAT_VERSION,
            "cmid": str(self.cmid),
        }
        if self.confirmation is not None:
            obj["confirmation"] = _b64(self.confirmation)
        else:
            obj["error"] = {"code": self.error_code, "detail": self.error_detail}
        return obj

    @classmethod
    def from_json(cls, text: str | bytes | dict[str, Any]) -> MakResponse:
        what = "MAK activation response"
        obj = _object(text, cls.FORMAT, what)
        try:
            cmid = uuid.UUID(str(_field(obj, "cmid", what)))
        except ValueError as exc:
            raise ConfigurationError(f"{what}: cmid must be a UUID") from exc
        if "confirmation" in obj:
            return cls(cmid, _unb64(obj["confirmation"], "confirmation"))
        err = obj.get("error")
        if not isinstance(err, dict):
            raise ConfigurationError(f"{what} has neither a confirmation nor an error")
        return cls(cmid, None, str(err.get("code")), str(err.get("detail")))


def authority_url(text: str, what: str = "authority URL") -> str:
    """``text`` if it is an http(s) URL with a host, else a :class:`ConfigurationError`.

    Checked before any request, so that a mistyped URL is reported as such rather
    than as a network failure (or a crash inside the HTTP client).
    """
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigurationError(f"{what} {text!r} is a malformed URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{what} must be an http:// or https:// URL with a host, "
            f"e.g. https://activate.example.com; not {text!r}"
        )
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise ConfigurationError(
            f"{what} {text!r} is a malformed URL (spaces or control characters)"
        )
    if ":" not in parts.hostname:  # a name, not an IPv6 literal: must be encodable for DNS
        try:
            parts.hostname.encode("idna")
        except UnicodeError as exc:
            raise ConfigurationError(f"{what} {text!r} has a malformed host name ({exc})") from exc
    return text


def dumps(doc: HostActivationRequest | HostActivationResponse | MakRequest | MakResponse) -> str:
    """The text of a file holding ``doc``."""
    return json.dumps(doc.to_json(), indent=2) + "\n"
