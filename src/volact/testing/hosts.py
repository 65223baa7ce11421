"""Hosts for tests, benchmarks and demos, without an authority.

:func:`make_host_home` builds a ready host home on disk; :func:`make_test_host`
an in-memory :class:`~volact.host.policy.HostCore`. A vendor key made here signs
the host license directly, the way the authority would. Never used by a serving
host: it exists so that tests and ``make bench`` need no authority service.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from volact.catalog import Catalog, demo_catalog
from volact.documents import HostLicense, RevocationList
from volact.exchanges import HostActivationResponse
from volact.host.activation import init_home, install_license, load_signing_key
from volact.host.config import HostConfig
from volact.host.home import save_config
from volact.host.policy import HostCore
from volact.profile import ProductProfile
from volact.signing import SigningKey


def make_host_home(
    home: Path,
    *,
    vendor: SigningKey | None = None,
    catalog: Catalog | None = None,
    groups: tuple[str, ...] = ("server", "desktop"),
    activated: bool = True,
    port: int = 0,
    expires_at: int | None = None,
    **settings: object,
) -> tuple[ProductProfile, SigningKey, HostConfig]:
    """A host home in ``home`` (activated for ``groups`` unless told otherwise).

    Returns the profile, the vendor key that signed the license, and the settings
    (``settings`` are passed to :class:`HostConfig`, e.g. ``count_vms=False``).
    """
    vendor = vendor or SigningKey.generate()
    profile = ProductProfile("Test Vendor", vendor.public_key, catalog or demo_catalog())
    cfg = init_home(home, profile.dumps().encode(), fqdn="host.test", port=port)
    if settings:
        cfg = cfg.with_changes(**settings)
        save_config(home, cfg)
    if activated:
        lic = HostLicense(
            vendor.key_id, cfg.host_id, load_signing_key(home).public_key,
            secrets.token_bytes(12), groups, int(time.time()) - 60, expires_at,
        ).sign(vendor)  # fmt: skip
        install_license(home, cfg, HostActivationResponse(lic))
    return profile, vendor, cfg


def make_test_host(
    vendor_key: SigningKey,
    catalog: Catalog,
    *,
    groups: tuple[str, ...] = ("server", "desktop"),
    host_key: SigningKey | None = None,
    host_id: bytes = bytes.fromhex("0123456789abcdef"),
    issued_at: int = 0,
    expires_at: int | None = None,
    count_vms: bool = True,
    activation_interval: int = 120,
    renewal_interval: int = 10080,
    revocations: RevocationList | None = None,
    activated: bool = True,
    **settings: Any,
) -> HostCore:
    """A fully activated in-memory host for tests (no files, no sockets).

    The vendor key signs a host license for ``groups``; ``core.license_bytes`` is
    that license (what a GET_LICENSE exchange returns). Wire a client to it with
    ``core.handle_frame(frame, now=..., address=...)``. Other ``settings`` go to
    :class:`HostConfig` (``max_machines=5``, ``new_machines_per_hour=10``...).
    """
    key = host_key or SigningKey.from_seed(bytes(range(32)))
    cfg = HostConfig(
        host_id=host_id,
        activation_interval=activation_interval,
        renewal_interval=renewal_interval,
        count_vms=count_vms,
        **settings,
    )
    lic = None
    if activated:
        lic = HostLicense(
            vendor_key.key_id, host_id, key.public_key, b"\x42" * 12, groups, issued_at,
            expires_at,
        ).sign(vendor_key)  # fmt: skip
    return HostCore(
        config=cfg,
        catalog=catalog,
        signing_key=key,
        host_license=lic,
        vendor_public_key=vendor_key.public_key,
        revocations=revocations,
    )


__all__ = ["make_host_home", "make_test_host"]
