"""The catalog and the product profile: demo defaults, JSON round trips, bad files."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from volact.catalog import Catalog, ProductGroup, Sku, demo_catalog
from volact.errors import ConfigurationError, UnknownKeyError
from volact.keys import KeyKind, ProductKey
from volact.profile import ProductProfile
from volact.signing import SigningKey


def _profile() -> ProductProfile:
    vendor = SigningKey.from_seed(b"\x01" * 32)
    cat = demo_catalog()
    gvlks = {s.id: ProductKey.derive_gvlk(vendor.public_key, s.id.bytes).text for s in cat.skus}
    return ProductProfile("Acme", vendor.public_key, cat, gvlks)


def test_demo_catalog_thresholds_and_coverage() -> None:
    cat = demo_catalog()
    assert cat.group("server").threshold == 5
    assert cat.group("desktop").threshold == 25
    assert cat.activatable_groups("server") == {"server", "desktop"}
    assert cat.activatable_groups("desktop") == {"desktop"}
    assert len(cat.products) == 2
    for s in cat.skus:
        assert cat.sku(s.id) is s and cat.sku(str(s.id)) is s and cat.sku(s.name) is s
        assert cat.threshold_for(s.id) == cat.group(s.group).threshold
    assert demo_catalog() == cat  # stable ids


def test_catalog_lookup_errors_name_the_choices() -> None:
    cat = demo_catalog()
    with pytest.raises(ConfigurationError, match="known SKUs"):
        cat.sku("Retail")
    with pytest.raises(ConfigurationError, match="known: desktop, server"):
        cat.group("mainframe")
    with pytest.raises(ConfigurationError, match="unknown SKU id"):
        cat.sku(uuid.uuid4())


def test_catalog_validation() -> None:
    g = ProductGroup("a", 3)
    with pytest.raises(ConfigurationError, match="unknown group"):
        Catalog((g,), (Sku(uuid.uuid4(), "x", "x", "p", "b"),))
    with pytest.raises(ConfigurationError, match="covers unknown"):
        Catalog((ProductGroup("a", 3, ("z",)),), ())
    with pytest.raises(ConfigurationError, match="threshold"):
        ProductGroup("a", 0)


def test_catalog_json_round_trip() -> None:
    cat = demo_catalog()
    assert Catalog.from_json(json.loads(json.dumps(cat.to_json()))) == cat


def test_profile_round_trip_and_gvlk_lookup() -> None:
    p = _profile()
    q = ProductProfile.loads(p.dumps())
    assert q == p
    for s in p.catalog.skus:
        key = q.gvlk(s)
        assert key.kind is KeyKind.GVLK
        assert q.sku_for_gvlk(key) == s
    stranger = ProductKey.derive_gvlk(b"\x02" * 32, p.catalog.skus[0].id.bytes)
    with pytest.raises(UnknownKeyError, match="belongs to no product"):
        q.sku_for_gvlk(stranger)
    assert json.loads(p.dumps())["dns_label"] == "_volact._tcp"


def test_profile_refuses_the_other_protocols_label() -> None:
    p = _profile()
    obj = p.to_json()
    obj["dns_label"] = "_vlmcs._tcp"
    with pytest.raises(ConfigurationError, match="another protocol"):
        ProductProfile.loads(json.dumps(obj))


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda o: o.pop("vendor_public_key"), "malformed"),
        (lambda o: o.update(format="something"), "not a volact product profile"),
        (lambda o: o.update(version=99), "not supported"),
        (lambda o: o.update(vendor_public_key="!!"), "malformed"),
        (lambda o: o["catalog"].pop("skus"), "catalog is malformed"),
        (lambda o: o.update(gvlks={"not-a-uuid": "x"}), "malformed"),
        (lambda o: o.update(dns_label="volact"), "must look like"),
    ],
)
def test_profile_defects_are_configuration_errors(mutate: object, fragment: str) -> None:
    obj = _profile().to_json()
    mutate(obj)  # type: ignore[operator]
    with pytest.raises(ConfigurationError, match=fragment):
        ProductProfile.loads(json.dumps(obj))


@given(st.binary(max_size=200))
def test_random_profile_bytes_raise_configuration_error(blob: bytes) -> None:
    with pytest.raises(ConfigurationError):
        ProductProfile.loads(blob)
