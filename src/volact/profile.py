"""The product profile: what a vendor ships inside its product.

It holds the vendor's public key (the root of trust), the catalog, the public setup
key (GVLK) of each SKU, the DNS service label clients look up, and optionally the
authority's URL and a signed revocation list. It is JSON, so a vendor can read
it; nothing in it is secret. Parsing text is here; reading files is the caller's.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from volact.addresses import check_service_label
from volact.catalog import Catalog, Sku
from volact.documents import RevocationList, verify_revocation_list
from volact.errors import AddressError, ConfigurationError, UnknownKeyError, VolactError
from volact.keys import KeyKind, ProductKey
from volact.signing import PUBLIC_KEY_BYTES, key_id

PROFILE_FORMAT = "volact-profile"
PROFILE_VERSION = 1
DNS_LABEL = "_volact._tcp"


@dataclass(frozen=True)
class ProductProfile:
    """The vendor's public facts that every client and host needs."""

    vendor: str  #: the vendor's display name
    vendor_public_key: bytes  #: raw Ed25519 public key, the root of every signature
    catalog: Catalog  #: products, SKUs and product groups
    gvlks: dict[uuid.UUID, str] = field(default_factory=dict)  #: SKU id → its GVLK text
    dns_label: str = DNS_LABEL  #: SRV service label clients look up
    authority_url: str | None = None  #: where MAK and host-key activation go
    revocations: bytes | None = None  #: a vendor-signed revocation list, if any

    def __post_init__(self) -> None:
        if len(self.vendor_public_key) != PUBLIC_KEY_BYTES:
            raise ConfigurationError("profile: the vendor public key must be 32 bytes")
        try:
            check_service_label(self.dns_label)
        except AddressError as exc:
            raise AddressError(f"profile: {exc}") from None

    @property
    def vendor_key_id(self) -> bytes:
        return key_id(self.vendor_public_key)

    def revocation_list(self) -> RevocationList | None:
        if self.revocations is None:
            return None
        return verify_revocation_list(self.revocations, self.vendor_public_key)

    def gvlk(self, sku: Sku) -> ProductKey:
        return ProductKey.parse(self.gvlks[sku.id])

    def sku_for_gvlk(self, key: ProductKey) -> Sku:
        """The SKU a GVLK installs, or :class:`UnknownKeyError`."""
        if key.kind is not KeyKind.GVLK:
            raise UnknownKeyError("not a GVLK")
        for sku_id, text in self.gvlks.items():
            if ProductKey.parse(text) == key:
                return self.catalog.sku(sku_id)
        raise UnknownKeyError(
            "this setup key (GVLK) is well formed but belongs to no product in this profile"
        )

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "vendor": self.vendor,
            "vendor_public_key": base64.b64encode(self.vendor_public_key).decode(),
            "vendor_key_id": self.vendor_key_id.hex(),
            "dns_label": self.dns_label,
            "authority_url": self.authority_url,
            "catalog": self.catalog.to_json(),
            "gvlks": {str(k): v for k, v in sorted(self.gvlks.items(), key=lambda kv: str(kv[0]))},
        }
        if self.revocations is not None:
            obj["revocations"] = base64.b64encode(self.revocations).decode()
        return obj

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def loads(cls, text: str | bytes) -> ProductProfile:
        """Parse a profile; any defect is a :class:`ConfigurationError`."""
        try:
            obj = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"the product profile is not valid JSON: {exc}") from exc
        if not isinstance(obj, dict) or obj.get("format") != PROFILE_FORMAT:
            raise ConfigurationError("this file is not a volact product profile")
        if obj.get("version") != PROFILE_VERSION:
            raise ConfigurationError(f"profile version {obj.get('version')} is not supported")
        try:
            pub = base64.b64decode(obj["vendor_public_key"], validate=True)
            revs = obj.get("revocations")
            profile = cls(
                vendor=str(obj["vendor"]),
                vendor_public_key=pub,
                catalog=Catalog.from_json(obj["catalog"]),
                gvlks={uuid.UUID(k): str(v) for k, v in dict(obj.get("gvlks", {})).items()},
                dns_label=str(obj.get("dns_label", DNS_LABEL)),
                authority_url=obj.get("authority_url") or None,
                revocations=base64.b64decode(revs, validate=True) if revs else None,
            )
            for text in profile.gvlks.values():
                ProductKey.parse(text)
            if revs:
                profile.revocation_list()
        except ConfigurationError:
            raise
        except (KeyError, TypeError, ValueError, binascii.Error, VolactError) as exc:
            raise ConfigurationError(f"the product profile is malformed: {exc}") from exc
        return profile
