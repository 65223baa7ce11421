"""Writing files so that a crash leaves either the old file or the new one.

Every home directory in volact (authority, host, client) writes its settings,
keys, licenses and state through :func:`write_atomic`. OS errors become a volact
error naming the file. :func:`take_lock` is the one ``flock`` helper of every home
(a serving host or authority, a client's read-modify-write).
"""

from __future__ import annotations

import contextlib
import fcntl
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


class LockHeld(Exception):
    """Another process holds the lock (raised by :func:`take_lock` with ``wait=False``)."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"held by pid {holder}")
        #: the pid the holder wrote in the lock file, as text ("unknown" if none)
        self.holder = holder


def take_lock(path: Path, *, wait: bool = False, mode: int = 0o644, record_pid: bool = True) -> int:
    """Take an exclusive ``flock`` on ``path`` (created if missing); return its descriptor.

    The one lock helper of every home: a serving host or authority holds its
    ``serve.lock`` without waiting (a second one is refused with :class:`LockHeld`,
    naming the holder's pid, which ``record_pid`` writes into the file); a client
    waits for its ``.lock`` around each read-modify-write. The lock goes away with
    the process however it ends. ``OSError`` from opening the file is the caller's
    to translate. Release with :func:`release_lock`.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        if wait:  # not contention: a real error, the caller's to translate
            os.close(fd)
            raise
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise LockHeld(holder) from None
    if record_pid:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    return fd


def release_lock(fd: int | None) -> None:
    """Release a lock from :func:`take_lock` (closing its descriptor); None is a no-op."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
