"""A host home on disk: its settings file (``host.json``) and its file modes.

The file layout and the validation of values are :mod:`volact.host.config`'s;
this module is the I/O around them. Writes are atomic.

File modes (docs/operations.md § File modes): the home is ``0700``, or ``2750``
owned by a *monitoring group* whose members may run the read-only commands
(``status``, ``alerts``, ``report``, ``events``); the setgid bit makes files
created later belong to that group too. Secrets (the host's signing key, the
installed host key, the serving lock) are ``0600`` whatever the group; everything
else is ``0640``. Nobody else can enter the home.
"""

from __future__ import annotations

import grp
import json
import os
import stat
from pathlib import Path

from volact.errors import ConfigurationError
from volact.files import write_atomic
from volact.host.config import (
    CONFIG_FILE,
    LOCK_FILE,
    PRODUCT_KEY_FILE,
    SIGNING_KEY_FILE,
    HostConfig,
)

#: Files only the host's owner may read: secrets, and the lock only the server takes.
SECRET_FILES = frozenset({SIGNING_KEY_FILE, PRODUCT_KEY_FILE, LOCK_FILE})
#: Mode of every other file in a home (readable by the monitoring group, if any).
SHARED_MODE = 0o640
SECRET_MODE = 0o600


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
    write_atomic(
        home / CONFIG_FILE,
        (json.dumps(cfg.to_json(), indent=2) + "\n").encode(),
        mode=SHARED_MODE,
    )


def monitor_group(home: Path) -> str | None:
    """The home's monitoring group (None when the home is owner-only)."""
    try:
        st = home.stat()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {home}: {exc.strerror}") from exc
    if not st.st_mode & stat.S_IRGRP:
        return None
    try:
        return grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        return str(st.st_gid)


def group_id(group: str) -> int:
    """The gid of ``group`` (a name or a number); a clear error when there is none."""
    try:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigurationError(
            f"no group named {group!r} on this machine (create it with `groupadd {group}`)"
        ) from None


def secure_home(home: Path, group: str | None) -> None:
    """Apply the home's file modes; ``group`` (a name or gid) may read, or nobody.

    Run by ``host init`` and ``host set --monitor-group``; safe to run again.
    """
    gid = -1 if group is None else group_id(group)
    try:
        os.chown(home, -1, gid)  # -1: leave unchanged (owner-only homes keep theirs)
        os.chmod(home, 0o2750 if group is not None else 0o700)
        for path in home.iterdir():
            if not path.is_file() or path.is_symlink():
                continue
            secret = path.name in SECRET_FILES
            os.chown(path, -1, -1 if secret else gid)
            os.chmod(path, SECRET_MODE if secret else SHARED_MODE)
    except PermissionError as exc:
        raise ConfigurationError(
            f"cannot set the modes of {exc.filename}: {exc.strerror} (the home's owner or "
            "root must run this; a group can be given only by a member of it or by root)"
        ) from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot set the modes of {exc.filename}: {exc.strerror}") from exc
