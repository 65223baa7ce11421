"""Signed documents: golden vectors, round trips, tamper detection, the chain."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import docvectors as dv
from volact.catalog import demo_catalog
from volact.documents import (
    ActivationTicket,
    HostLicense,
    MakConfirmation,
    RevocationList,
    verify_chain,
    verify_host_license,
    verify_mak_confirmation,
    verify_revocation_list,
    verify_ticket,
)
from volact.errors import (
    BadSignature,
    DecodeError,
    Expired,
    Revoked,
    SkuNotCovered,
    UnknownVendor,
    VerificationError,
    WrongHost,
    WrongMachine,
    WrongNonce,
)
from volact.keys import ProductKey
from volact.signing import SigningKey

GOLDEN: dict[str, str] = json.loads(dv.VECTORS.read_text())
CATALOG = demo_catalog()


def test_golden_vectors_byte_for_byte() -> None:
    assert dv.build() == GOLDEN


def test_golden_documents_decode_to_their_inputs() -> None:
    assert HostLicense.decode(bytes.fromhex(GOLDEN["host_license"]))[0] == dv.host_license()
    assert ActivationTicket.decode(bytes.fromhex(GOLDEN["activation_ticket"]))[0] == dv.ticket()
    moving = bytes.fromhex(GOLDEN["activation_ticket_move"])
    assert ActivationTicket.decode(moving)[0] == dv.ticket_move()
    assert len(moving) == ActivationTicket.SIZE_V2 == 151
    assert (
        MakConfirmation.decode(bytes.fromhex(GOLDEN["mak_confirmation"]))[0]
        == dv.mak_confirmation()
    )
    assert (
        RevocationList.decode(bytes.fromhex(GOLDEN["revocation_list"]))[0] == dv.revocation_list()
    )
    assert ProductKey.parse(GOLDEN["host_key"]) == dv.HOST_KEY
    assert ProductKey.parse(GOLDEN["mak"]) == dv.MAK


def test_ticket_size_fits_the_reply_budget() -> None:
    ticket = bytes.fromhex(GOLDEN["activation_ticket"])
    assert len(ticket) == ActivationTicket.SIZE == 150
    # Reply = 4 framing + 25 fixed fields + ticket; the case study's bound is 250.
    assert 4 + 25 + len(ticket) < 200
    print(
        f"\nactivation ticket: {len(ticket)} bytes; host license: "
        f"{len(bytes.fromhex(GOLDEN['host_license']))} bytes"
    )


def _verifiers() -> dict[str, Callable[[bytes], Any]]:
    lic = dv.host_license()
    vendor = dv.VENDOR.public_key
    return {
        "host_license": lambda b: verify_host_license(b, vendor, now=dv.T0),
        "activation_ticket": lambda b: verify_ticket(b, lic, CATALOG, cmid=dv.CMID, nonce=dv.NONCE),
        "mak_confirmation": lambda b: verify_mak_confirmation(
            b, vendor, cmid=dv.CMID, sku=dv.desktop_sku()
        ),
        "revocation_list": lambda b: verify_revocation_list(b, vendor),
    }


@pytest.mark.parametrize("name", list(_verifiers()))
def test_golden_documents_verify(name: str) -> None:
    _verifiers()[name](bytes.fromhex(GOLDEN[name]))


@pytest.mark.parametrize("name", list(_verifiers()))
@given(data=st.data())
def test_flipping_any_byte_breaks_verification(name: str, data: st.DataObject) -> None:
    doc = bytearray.fromhex(GOLDEN[name])
    i = data.draw(st.integers(0, len(doc) - 1), label="index")
    bit = data.draw(st.integers(1, 255), label="xor")
    doc[i] ^= bit
    with pytest.raises((VerificationError, DecodeError)):
        _verifiers()[name](bytes(doc))


@pytest.mark.parametrize("cls", [HostLicense, ActivationTicket, MakConfirmation, RevocationList])
@given(blob=st.binary(max_size=400))
def test_random_bytes_decode_or_raise_decode_error(cls: Any, blob: bytes) -> None:
    with contextlib.suppress(DecodeError):
        cls.decode(blob)


@pytest.mark.parametrize(
    "name", ["host_license", "activation_ticket", "mak_confirmation", "revocation_list"]
)
def test_truncated_and_extended_documents_are_refused(name: str) -> None:
    doc = bytes.fromhex(GOLDEN[name])
    verify = _verifiers()[name]
    for cut in range(len(doc)):
        with pytest.raises((DecodeError, VerificationError)):
            verify(doc[:cut])
    with pytest.raises((DecodeError, VerificationError)):
        verify(doc + b"\x00")


def test_round_trip_of_license_with_expiry() -> None:
    lic = HostLicense(
        dv.VENDOR.key_id,
        dv.HOST_ID,
        dv.HOST.public_key,
        dv.HOST_KEY.serial,
        ("server",),
        dv.T0,
        dv.T0 + 10,
    )
    signed = lic.sign(dv.VENDOR)
    assert verify_host_license(signed, dv.VENDOR.public_key, now=dv.T0 + 9) == lic
    with pytest.raises(Expired):
        verify_host_license(signed, dv.VENDOR.public_key, now=dv.T0 + 10)


def test_chain_rejections_each_have_their_reason() -> None:
    vendor = dv.VENDOR.public_key
    lic_bytes = bytes.fromhex(GOLDEN["host_license"])
    tkt = bytes.fromhex(GOLDEN["activation_ticket"])
    ok = verify_chain(vendor, CATALOG, lic_bytes, tkt, cmid=dv.CMID, nonce=dv.NONCE, now=dv.T0)
    assert ok[1].count == 25

    other_vendor = SigningKey.from_seed(b"\x07" * 32)
    with pytest.raises(UnknownVendor):
        verify_chain(
            other_vendor.public_key,
            CATALOG,
            lic_bytes,
            tkt,
            cmid=dv.CMID,
            nonce=dv.NONCE,
            now=dv.T0,
        )
    with pytest.raises(WrongMachine):
        verify_chain(vendor, CATALOG, lic_bytes, tkt, cmid=uuid.uuid4(), nonce=dv.NONCE, now=dv.T0)
    with pytest.raises(WrongNonce):
        verify_chain(vendor, CATALOG, lic_bytes, tkt, cmid=dv.CMID, nonce=b"\x00" * 16, now=dv.T0)
    # A stored ticket is re-checked without a nonce.
    verify_chain(vendor, CATALOG, lic_bytes, tkt, cmid=dv.CMID, nonce=None, now=dv.T0)

    revoked = dv.revocation_list()
    with pytest.raises(Revoked):
        verify_chain(
            vendor,
            CATALOG,
            lic_bytes,
            tkt,
            cmid=dv.CMID,
            nonce=dv.NONCE,
            now=dv.T0,
            revocations=revoked,
        )

    # A server-only license does not cover a desktop SKU.
    server_only = HostLicense(
        dv.VENDOR.key_id, dv.HOST_ID, dv.HOST.public_key, dv.HOST_KEY.serial, ("server",), dv.T0
    ).sign(dv.VENDOR)
    with pytest.raises(SkuNotCovered):
        verify_chain(vendor, CATALOG, server_only, tkt, cmid=dv.CMID, nonce=dv.NONCE, now=dv.T0)

    # A ticket signed by another host's key, claiming this host's id.
    impostor = SigningKey.from_seed(b"\x09" * 32)
    forged = dv.ticket().sign(impostor)
    with pytest.raises(BadSignature):
        verify_chain(vendor, CATALOG, lic_bytes, forged, cmid=dv.CMID, nonce=dv.NONCE, now=dv.T0)

    # A ticket naming another host id than the license's.
    t = dv.ticket()
    other_host = ActivationTicket(
        t.cmid,
        t.sku,
        t.nonce,
        b"\xee" * 8,
        t.issued_at,
        t.valid_until,
        t.activation_interval,
        t.renewal_interval,
        t.count,
    ).sign(dv.HOST)
    with pytest.raises(WrongHost):
        verify_chain(
            vendor, CATALOG, lic_bytes, other_host, cmid=dv.CMID, nonce=dv.NONCE, now=dv.T0
        )


def test_a_license_cannot_be_read_as_another_document() -> None:
    lic = bytes.fromhex(GOLDEN["host_license"])
    for cls in (ActivationTicket, MakConfirmation, RevocationList):
        with pytest.raises(DecodeError, match="expected"):
            cls.decode(lic)


def test_mak_confirmation_binds_machine_and_sku() -> None:
    conf = bytes.fromhex(GOLDEN["mak_confirmation"])
    other_sku = next(s.id for s in CATALOG.skus if s.id != dv.desktop_sku())
    with pytest.raises(WrongMachine):
        verify_mak_confirmation(conf, dv.VENDOR.public_key, cmid=uuid.uuid4(), sku=dv.desktop_sku())
    with pytest.raises(WrongMachine):
        verify_mak_confirmation(conf, dv.VENDOR.public_key, cmid=dv.CMID, sku=other_sku)


def test_trust_document_records_the_measured_sizes() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "trust.md").read_text()
    for name, row in [
        ("activation_ticket", "| activation ticket (signed) | {n} "),
        ("host_license", "| host license (signed, groups `desktop`, `server`) | {n} |"),
        ("mak_confirmation", "| MAK confirmation (signed) | {n} |"),
        ("revocation_list", "| revocation list (signed, one host-key id, one host id) | {n} |"),
    ]:
        assert row.format(n=len(bytes.fromhex(GOLDEN[name]))) in doc, name
