"""Writing files so that a crash leaves either the old file or the new one.

Every home directory in volact (authority, host, client) writes its settings,
keys, licenses and state through :func:`write_atomic`. OS errors become a volact
error naming the file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from volact.errors import ConfigurationError, VolactError


def write_atomic(
    path: Path,
    data: bytes | str,
    *,
    mode: int = 0o644,
    error: type[VolactError] = ConfigurationError,
) -> None:
    """Replace ``path`` with ``data``: temporary file, fsync, rename, fsync the folder.

    ``mode`` is applied before the rename, so a secret is never readable by others
    even for a moment. Failures raise ``error`` with the file's name.
    """
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, raw)
            os.fsync(fd)
            os.fchmod(fd, mode)  # the umask may have narrowed it; never widen past mode
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise error(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the rename is done
    finally:
        os.close(dir_fd)
