"""Reading and writing a host home's settings file (``host.json``).

The file layout and the validation of values are :mod:`volact.host.config`'s;
this module is the I/O around them. Writes are atomic.
"""

from __future__ import annotations

import json
from pathlib import Path

from volact.errors import ConfigurationError
from volact.files import write_atomic
from volact.host.config import CONFIG_FILE, HostConfig


def load_config(home: Path) -> HostConfig:
    """The host's settings; a clear error when the home is not a host home."""
    path = home / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            f"{home} is not a host home (no {CONFIG_FILE}); run `volact host init --home {home}`"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not UTF-8 text: is it a volact host.json?") from None
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not valid JSON: {exc}") from exc
    return HostConfig.from_json(obj)


def save_config(home: Path, cfg: HostConfig) -> None:
    """Write the settings atomically (a crash leaves the old or the new file)."""
    write_atomic(home / CONFIG_FILE, (json.dumps(cfg.to_json(), indent=2) + "\n").encode())
