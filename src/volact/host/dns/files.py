"""The host home's DNS files: ``dns.json`` (settings), the TSIG key file, the label.

Reads and writes files; the values they hold are :mod:`volact.host.dns.settings`'s
and :mod:`volact.host.dns.tsig`'s. Errors never show the TSIG secret.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from volact.addresses import check_service_label
from volact.errors import ConfigurationError, VolactError
from volact.files import write_atomic
from volact.host.dns.names import DEFAULT_LABEL
from volact.host.dns.settings import DnsSettings
from volact.host.dns.tsig import TsigKey, parse_bind_key

#: The settings file in the host home.
SETTINGS_FILE = "dns.json"
#: A key file larger than this is not a key file.
MAX_KEY_FILE = 64 * 1024


def load_settings(home: Path) -> DnsSettings:
    """The host's DNS settings; defaults (publishing off) when none were set."""
    path = Path(home) / SETTINGS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DnsSettings()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not valid JSON: {exc}") from exc
    try:
        return DnsSettings.from_json(obj)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc


def save_settings(home: Path, settings: DnsSettings) -> None:
    """Write ``dns.json`` atomically (it holds no secret: only the key file's path)."""
    home = Path(home)
    if not home.is_dir():
        raise ConfigurationError(f"host home {home} does not exist; run `volact host init`")
    data = json.dumps(settings.to_json(), indent=2, sort_keys=True) + "\n"
    write_atomic(home / SETTINGS_FILE, data.encode())


def read_key_file(path: str | os.PathLike[str]) -> TsigKey:
    """The TSIG key in a BIND key file (``tsig-keygen`` output); errors never show the secret."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise ConfigurationError(f"TSIG key file {p} does not exist") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read TSIG key file {p}: {exc.strerror}") from exc
    if len(data) > MAX_KEY_FILE:
        raise ConfigurationError(f"TSIG key file {p} is larger than {MAX_KEY_FILE} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"TSIG key file {p} is not text") from None
    try:
        return parse_bind_key(text)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{p}: {exc}") from exc


def service_label(home: Path, settings: DnsSettings) -> str:
    """The SRV label: the settings' override, else the profile's ``dns_label``, else the default."""
    if settings.label is not None:
        return settings.label
    path = Path(home) / "profile.json"
    try:
        text = path.read_bytes()
    except OSError:
        return DEFAULT_LABEL
    from volact.profile import ProductProfile

    try:
        return check_service_label(ProductProfile.loads(text).dns_label)
    except VolactError:
        return DEFAULT_LABEL


def host_id_of(home: Path) -> str:
    """This host's id as hex (``host.json``): what its ownership markers carry."""
    from volact.host.home import load_config

    return load_config(Path(home)).host_id.hex()
