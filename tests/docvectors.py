"""Deterministic inputs for the signed-document and key test vectors.

``python tests/docvectors.py`` rewrites ``tests/vectors/documents.json``; do that
only when a layout changes on purpose, and say so in the commit and in
docs/protocol.md.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from volact.catalog import demo_catalog
from volact.documents import (
    ActivationTicket,
    HostLicense,
    MakConfirmation,
    RevocationList,
    installation_id,
)
from volact.keys import KeyKind, ProductKey
from volact.signing import SigningKey

VECTORS = Path(__file__).parent / "vectors" / "documents.json"

VENDOR = SigningKey.from_seed(bytes(range(32)))
HOST = SigningKey.from_seed(bytes(range(32, 64)))
HOST_ID = bytes.fromhex("0102030405060708")
HOST_KEY = ProductKey(KeyKind.HOST, bytes.fromhex("a1a2a3a4a5a6a7a8a9aaabac"))
MAK = ProductKey(KeyKind.MAK, bytes.fromhex("b1b2b3b4b5b6b7b8b9babbbc"))
CMID = uuid.UUID("11111111-2222-4333-8444-555555555555")
NONCE = bytes(range(100, 116))
T0 = 1_790_000_000  # 2026-09-21


def desktop_sku() -> uuid.UUID:
    return next(s.id for s in demo_catalog().skus if s.group == "desktop")


def host_license() -> HostLicense:
    return HostLicense(
        VENDOR.key_id, HOST_ID, HOST.public_key, HOST_KEY.serial, ("desktop", "server"), T0, None
    )


def ticket() -> ActivationTicket:
    return ActivationTicket(
        CMID, desktop_sku(), NONCE, HOST_ID, T0, T0 + 180 * 86400, 120, 10080, 25
    )


def ticket_move() -> ActivationTicket:
    """The same grant as :func:`ticket`, version 2, asking the client to move."""
    return ActivationTicket(
        CMID, desktop_sku(), NONCE, HOST_ID, T0, T0 + 180 * 86400, 120, 10080, 25, True, 2
    )


def mak_confirmation() -> MakConfirmation:
    sku = desktop_sku()
    return MakConfirmation(VENDOR.key_id, MAK.serial, CMID, sku, installation_id(CMID, sku), T0)


def revocation_list() -> RevocationList:
    return RevocationList(VENDOR.key_id, 3, T0, frozenset({HOST_KEY.serial}), frozenset({HOST_ID}))


def build() -> dict[str, str]:
    """Every golden encoding, as hex (keys as text)."""
    return {
        "vendor_public_key": VENDOR.public_key.hex(),
        "host_public_key": HOST.public_key.hex(),
        "host_license": host_license().sign(VENDOR).hex(),
        "activation_ticket": ticket().sign(HOST).hex(),
        "activation_ticket_move": ticket_move().sign(HOST).hex(),
        "mak_confirmation": mak_confirmation().sign(VENDOR).hex(),
        "revocation_list": revocation_list().sign(VENDOR).hex(),
        "host_key": HOST_KEY.text,
        "mak": MAK.text,
        "gvlk_desktop": ProductKey.derive_gvlk(VENDOR.public_key, desktop_sku().bytes).text,
    }


if __name__ == "__main__":
    VECTORS.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {VECTORS}")
