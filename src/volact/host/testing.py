"""Helpers that build a ready host home without an authority (tests, benchmarks, demos).

A vendor key made here signs the host license directly, the way the authority
would. Never used by a serving host: it exists so that tests and ``make bench``
need no authority service.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from volact.catalog import Catalog, demo_catalog
from volact.documents import HostLicense
from volact.exchanges import HostActivationResponse
from volact.host.activation import init_home, install_license, load_signing_key
from volact.host.config import HostConfig
from volact.host.home import save_config
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
