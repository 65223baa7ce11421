"""The rebalance setting on disk, and how a running host notices that it changed.

The setting lives in ``rebalance.json`` in the host's home (written by ``volact
host rebalance``); :class:`FileWatch` lets a running host notice a change with one
``stat`` from its housekeeping loop, never on the request path, so no restart is
needed. The values are :mod:`volact.host.rebalance`'s.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from volact.errors import ConfigurationError
from volact.files import write_atomic
from volact.host.rebalance import Rebalance

REBALANCE_FILE = "rebalance.json"


def load_rebalance(home: Path) -> Rebalance | None:
    """The host's rebalance setting, or None when there is none (or it was stopped)."""
    path = home / REBALANCE_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return Rebalance.from_json(json.loads(data.decode("utf-8")))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path} is not valid JSON: {exc}") from exc
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc


def save_rebalance(home: Path, rb: Rebalance | None) -> None:
    """Write the setting (atomically), or remove it when ``rb`` is None."""
    path = home / REBALANCE_FILE
    if rb is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    write_atomic(path, (json.dumps(rb.to_json(), indent=2) + "\n").encode())


class FileWatch:
    """Tells whether a small settings file changed since the last look (one ``stat``).

    The change key is (inode, size, mtime in ns): an atomic rename changes the
    inode even within one mtime tick. A missing file is a state of its own.
    Meant for any setting a running host should pick up without a restart.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: tuple[int, int, int] | None = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def changed(self) -> bool:
        key = self._stat()
        if key == self._key:
            return False
        self._key = key
        return True


__all__ = ["REBALANCE_FILE", "FileWatch", "load_rebalance", "save_rebalance"]
