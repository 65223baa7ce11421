"""The host's identity and its own activation: init, install-key, offline and online.

``init_home`` creates a home (host id, Ed25519 signing key, profile copy, store);
``install_key`` stores a host key; ``activation_request`` builds what goes to the
vendor's authority; ``install_license`` checks the authority's answer (vendor
signature, this host's id and public key) and installs it; ``load_core`` builds the
:class:`HostCore` that serves. File handling lives here; decisions do not.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from pathlib import Path

from volact.errors import ConfigurationError, KeyFormatError, TransportError
from volact.exchanges import HostActivationRequest, HostActivationResponse, authority_url
from volact.files import write_atomic
from volact.host.client_index import COUNT_WINDOW, ClientColumns, ClientIndex
from volact.host.config import (
    CONFIG_FILE,
    LICENSE_FILE,
    PRODUCT_KEY_FILE,
    PROFILE_FILE,
    SIGNING_KEY_FILE,
    HostConfig,
)
from volact.host.home import SECRET_MODE, SHARED_MODE, group_id, save_config, secure_home
from volact.host.policy import HostCore, check_license
from volact.keys import KeyKind, ProductKey
from volact.profile import ProductProfile
from volact.signing import SigningKey


def init_home(
    home: Path,
    profile_text: bytes,
    *,
    fqdn: str = "localhost",
    port: int = 1688,
    monitor_group: str | None = None,
) -> HostConfig:
    """Create a new host home; refuse to overwrite an existing one.

    The home is owner-only, or readable by ``monitor_group`` (secrets excepted):
    see :func:`volact.host.home.secure_home`.
    """
    profile = ProductProfile.loads(profile_text)
    if (home / CONFIG_FILE).exists():
        raise ConfigurationError(f"{home} is already a host home; choose another directory")
    if monitor_group is not None:
        group_id(monitor_group)  # refuse an unknown group before writing anything
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        home.chmod(0o700)  # an existing empty folder too: closed while secrets are written
    except OSError as exc:
        raise ConfigurationError(f"cannot create {home}: {exc.strerror}") from exc
    cfg = HostConfig(host_id=secrets.token_bytes(8), fqdn=fqdn, port=port)
    key = SigningKey.generate()
    write_atomic(home / SIGNING_KEY_FILE, key.to_pem(), mode=SECRET_MODE)
    write_atomic(home / PROFILE_FILE, profile.dumps().encode(), mode=SHARED_MODE)
    save_config(home, cfg)
    from volact.host.store import HostStore  # the store creates its schema

    HostStore.open(home).close()
    secure_home(home, monitor_group)
    return cfg


def load_profile(home: Path) -> ProductProfile:
    return ProductProfile.loads(_read(home / PROFILE_FILE, "the product profile"))


def load_signing_key(home: Path) -> SigningKey:
    return SigningKey.from_pem(_read(home / SIGNING_KEY_FILE, "the host signing key"))


def load_license(home: Path) -> bytes | None:
    path = home / LICENSE_FILE
    return _read(path, "the host license") if path.exists() else None


def installed_key(home: Path) -> ProductKey | None:
    path = home / PRODUCT_KEY_FILE
    if not path.exists():
        return None
    text = _read(path, "the installed host key").decode("utf-8", errors="replace").strip()
    try:
        return ProductKey.parse(text)
    except KeyFormatError as exc:
        raise ConfigurationError(
            f"the installed host key ({path}) is damaged: {exc}; install it again with "
            "`volact host install-key`"
        ) from None


def install_key(home: Path, text: str) -> ProductKey:
    """Check and store a host key (a MAK or GVLK is refused by name)."""
    if not (home / CONFIG_FILE).exists():
        raise ConfigurationError(f"{home} is not a host home; run `volact host init` first")
    key = ProductKey.parse(text)
    if key.kind is not KeyKind.HOST:
        kind = {KeyKind.MAK: "a MAK", KeyKind.GVLK: "a setup key (GVLK)"}[key.kind]
        raise KeyFormatError(f"this is {kind}, not a host key")
    write_atomic(home / PRODUCT_KEY_FILE, (key.text + "\n").encode(), mode=SECRET_MODE)
    return key


def activation_request(home: Path, cfg: HostConfig) -> HostActivationRequest:
    key = installed_key(home)
    if key is None:
        raise ConfigurationError(
            f"no host key is installed: run `volact host install-key --home {home} KEY`"
        )
    return HostActivationRequest(
        host_key=key.text,
        host_id=cfg.host_id,
        host_public_key=load_signing_key(home).public_key,
        hostname=cfg.fqdn,
    )


def install_license(
    home: Path, cfg: HostConfig, response: HostActivationResponse, *, now: int | None = None
) -> bytes:
    """Verify the authority's license for this host and install it; return it.

    A license that has already expired at ``now`` (default: the clock) is refused.
    """
    profile = load_profile(home)
    lic = check_license(
        response.host_license, cfg.host_id, load_signing_key(home), profile.vendor_public_key,
        now=int(time.time()) if now is None else now,
    )  # fmt: skip
    unknown = [g for g in lic.groups if g not in {x.name for x in profile.catalog.groups}]
    if unknown:
        raise ConfigurationError(f"the host license names unknown product groups: {unknown}")
    write_atomic(home / LICENSE_FILE, response.host_license, mode=SHARED_MODE)
    return response.host_license


def activate_online(home: Path, cfg: HostConfig, url: str, *, timeout: float = 30.0) -> bytes:
    """POST the activation request to ``URL/v1/hosts/activate`` and install the answer."""
    import httpx

    endpoint = authority_url(url).rstrip("/") + "/v1/hosts/activate"
    req = activation_request(home, cfg)
    try:
        resp = httpx.post(endpoint, json=req.to_json(), timeout=timeout)
    except (httpx.InvalidURL, UnicodeError) as exc:  # not HTTPErrors: the URL itself is bad
        raise ConfigurationError(f"authority URL {url!r} is malformed ({exc})") from exc
    except httpx.HTTPError as exc:
        raise TransportError(f"cannot reach the authority at {endpoint}: {exc}") from exc
    if resp.status_code != 200:
        detail = resp.text[:300]
        try:
            problem = resp.json()
            detail = f"{problem.get('title', '')}: {problem.get('detail', '')}".strip(": ")
            if problem.get("code"):
                detail += f" ({problem['code']})"
        except ValueError:
            pass
        raise ConfigurationError(f"the authority refused (HTTP {resp.status_code}): {detail}")
    return install_license(home, cfg, HostActivationResponse.from_json(resp.content))


def load_core(
    home: Path,
    cfg: HostConfig,
    rows: Iterable[tuple[bytes, int, bool]] | ClientColumns,
    *,
    now: int,
) -> HostCore:
    """The serving core: profile, key, license (if any) and the count from ``rows``.

    ``rows`` are the store's clients, as rows or (faster) as columns.
    """
    profile = load_profile(home)
    if isinstance(rows, ClientColumns):
        index = ClientIndex.from_columns(rows, now=now, window=COUNT_WINDOW)
    else:
        index = ClientIndex.from_rows(rows, now=now, window=COUNT_WINDOW)
    return HostCore(
        config=cfg,
        catalog=profile.catalog,
        signing_key=load_signing_key(home),
        host_license=load_license(home),
        vendor_public_key=profile.vendor_public_key,
        revocations=profile.revocation_list(),
        index=index,
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"{what} ({path}) is missing: is this a host home?") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} ({path}): {exc.strerror}") from exc


__all__ = [
    "activate_online",
    "activation_request",
    "init_home",
    "install_key",
    "install_license",
    "installed_key",
    "load_core",
    "load_license",
    "load_profile",
    "load_signing_key",
]
