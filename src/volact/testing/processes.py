"""Processes and ports for test servers: free loopback ports, programs, stopping by PID.

Part of :mod:`volact.testing`: used by the test suite, the benchmarks and
``volact demo``, never by the product's runtime. Nothing here talks to anything
but 127.0.0.1 and ::1, and every wait is bounded in time.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import glob
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

LOOPBACK_V4 = "127.0.0.1"
LOOPBACK_V6 = "::1"

#: How long a server may take to answer after it was started, in seconds.
START_TIMEOUT = 30.0
#: How long a server may take to exit after it was asked to stop, in seconds.
STOP_TIMEOUT = 15.0


class ServiceError(RuntimeError):
    """A test service failed to start or stop."""


class PortInUse(ServiceError):
    """Another process took the port between :func:`free_port` and the server's bind."""


class ServiceMissing(ServiceError):
    """The program behind a test service is not installed here."""

    def __init__(self, program: str, hint: str) -> None:
        super().__init__(f"{program} is not installed; install with: {hint}")
        self.program = program
        self.hint = hint


# --------------------------------------------------------------------------- ports


def ipv6_loopback_available() -> bool:
    """Whether ::1 exists here (some containers run without IPv6)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind((LOOPBACK_V6, 0))
    except OSError:
        return False
    return True


def _port_is_free(family: socket.AddressFamily, address: str, port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        try:
            with socket.socket(family, kind) as s:
                if kind == socket.SOCK_STREAM:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((address, port))
        except OSError:
            return False
    return True


def free_port(*, ipv6: bool | None = None, attempts: int = 50) -> int:
    """A port that is free for both TCP and UDP on 127.0.0.1 (and ::1 if ``ipv6``).

    ``ipv6=None`` checks ::1 too when it exists. Another process may still take the
    port before the caller binds it; callers that start servers retry on a new port.
    """
    check_v6 = ipv6_loopback_available() if ipv6 is None else ipv6
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK_V4, 0))
            port = int(s.getsockname()[1])
        if not _port_is_free(socket.AF_INET, LOOPBACK_V4, port):
            continue
        if check_v6 and not _port_is_free(socket.AF_INET6, LOOPBACK_V6, port):
            continue
        return port
    raise ServiceError(f"no free TCP+UDP loopback port after {attempts} attempts")


# ----------------------------------------------------------------------- processes


def find_program(name: str, extra_globs: Iterable[str] = ()) -> str | None:
    """``name`` from PATH, /usr/sbin, /sbin or ``extra_globs`` (newest version first)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")
    if found:
        return found
    for pattern in extra_globs:
        candidates = sorted(glob.glob(pattern), key=_version_key, reverse=True)
        for candidate in candidates:
            path = os.path.join(candidate, name)
            if os.access(path, os.X_OK):
                return path
    return None


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in path.split(os.sep) if (part.isascii() and part.isdigit()))


def die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A ``preexec_fn`` asking Linux to send ``sig`` to the child when pytest dies.

    Covers the case no ``finally`` or ``atexit`` can: the test run being killed.
    """
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        if libc is not None:
            libc.prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)

    return preexec


def tail_of(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def stop_process(
    proc: subprocess.Popen[bytes] | None, sig: signal.Signals, timeout: float = STOP_TIMEOUT
) -> None:
    """Send ``sig`` and wait up to ``timeout``; SIGKILL a process that has not exited."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
