"""The vendor's catalog: products, their SKUs, and product groups with thresholds.

A SKU belongs to one product group; a group has an activation threshold (how many
distinct machines a host must count before it activates that group's SKUs) and
lists which groups a host key *of that group* may activate (a server host key can
also activate desktops). The catalog travels as JSON inside the product profile.
No I/O, no clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from volact.errors import ConfigurationError

_NS = uuid.UUID("6f0c3f3e-2a55-4b8e-9d1f-7a0c5e2b9e41")


@dataclass(frozen=True)
class ProductGroup:
    """A set of SKUs activated together, with its activation threshold."""

    name: str  #: short identifier, e.g. ``server``
    threshold: int  #: distinct machines a host must count before it activates this group
    covers: tuple[str, ...] = ()  #: other groups a host key of this group may activate

    def __post_init__(self) -> None:
        if not self.name or not self.name.isascii() or len(self.name) > 32:
            raise ConfigurationError(f"bad product group name {self.name!r}")
        if not 1 <= self.threshold <= 1_000_000:
            raise ConfigurationError(f"group {self.name}: threshold must be 1..1000000")


@dataclass(frozen=True)
class Sku:
    """One edition of one product, the unit a client installs and activates."""

    id: uuid.UUID  #: stable identifier used on the wire and in documents
    name: str  #: human name, e.g. ``Acme Desktop 2026 Professional``
    edition: str  #: e.g. ``Professional``
    product: str  #: the product it belongs to
    group: str  #: the product group that sets its threshold


@dataclass(frozen=True)
class Catalog:
    """Products → SKUs → product groups."""

    groups: tuple[ProductGroup, ...]  #: every product group
    skus: tuple[Sku, ...]  #: every SKU, each in one group
    _by_id: Mapping[uuid.UUID, Sku] = field(init=False, repr=False, compare=False)
    _groups: Mapping[str, ProductGroup] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        groups = {g.name: g for g in self.groups}
        if len(groups) != len(self.groups):
            raise ConfigurationError("catalog: duplicate product group names")
        by_id = {s.id: s for s in self.skus}
        if len(by_id) != len(self.skus):
            raise ConfigurationError("catalog: duplicate SKU ids")
        for s in self.skus:
            if s.group not in groups:
                raise ConfigurationError(f"catalog: SKU {s.name} names unknown group {s.group}")
        for g in self.groups:
            for c in g.covers:
                if c not in groups:
                    raise ConfigurationError(f"catalog: group {g.name} covers unknown {c}")
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_groups", groups)

    @property
    def products(self) -> list[str]:
        return sorted({s.product for s in self.skus})

    def group(self, name: str) -> ProductGroup:
        try:
            return self._groups[name]
        except KeyError:
            known = ", ".join(sorted(self._groups))
            raise ConfigurationError(f"unknown product group {name!r} (known: {known})") from None

    def sku(self, ref: str | uuid.UUID) -> Sku:
        """A SKU by id, by name, or by edition when that is unambiguous."""
        if isinstance(ref, uuid.UUID):
            if ref in self._by_id:
                return self._by_id[ref]
            raise ConfigurationError(f"unknown SKU id {ref}")
        try:
            return self.sku(uuid.UUID(ref))
        except ValueError:
            pass
        matches = [s for s in self.skus if ref.lower() in (s.name.lower(), s.edition.lower())]
        if len(matches) == 1:
            return matches[0]
        names = "; ".join(f"{s.name} ({s.id})" for s in self.skus)
        what = "ambiguous" if matches else "unknown"
        raise ConfigurationError(f"{what} SKU {ref!r}; known SKUs: {names}")

    def find_sku(self, sku_id: uuid.UUID) -> Sku | None:
        return self._by_id.get(sku_id)

    def activatable_groups(self, host_key_group: str) -> frozenset[str]:
        """Groups a host activated with a host key of ``host_key_group`` may serve."""
        g = self.group(host_key_group)
        return frozenset((g.name, *g.covers))

    def threshold_for(self, sku_id: uuid.UUID) -> int:
        return self.group(self._by_id[sku_id].group).threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "groups": [
                {"name": g.name, "threshold": g.threshold, "covers": list(g.covers)}
                for g in self.groups
            ],
            "skus": [
                {
                    "id": str(s.id),
                    "name": s.name,
                    "edition": s.edition,
                    "product": s.product,
                    "group": s.group,
                }
                for s in self.skus
            ],
        }

    @classmethod
    def from_json(cls, obj: Any) -> Catalog:
        try:
            groups = tuple(
                ProductGroup(str(g["name"]), int(g["threshold"]), tuple(map(str, g["covers"])))
                for g in obj["groups"]
            )
            skus = tuple(
                Sku(
                    uuid.UUID(str(s["id"])),
                    str(s["name"]),
                    str(s["edition"]),
                    str(s["product"]),
                    str(s["group"]),
                )
                for s in obj["skus"]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"catalog is malformed: {exc}") from exc
        return cls(groups, skus)


def _skus(product: str, group: str, editions: Iterable[str]) -> list[Sku]:
    return [
        Sku(uuid.uuid5(_NS, f"{product}/{e}"), f"{product} {e}", e, product, group)
        for e in editions
    ]


def demo_catalog() -> Catalog:
    """The built-in catalog: a server product (threshold 5) and a desktop one (25)."""
    return Catalog(
        groups=(
            ProductGroup("server", 5, covers=("desktop",)),
            ProductGroup("desktop", 25),
        ),
        skus=tuple(
            _skus("Acme Server 2026", "server", ("Standard", "Datacenter"))
            + _skus("Acme Desktop 2026", "desktop", ("Professional", "Enterprise"))
        ),
    )
