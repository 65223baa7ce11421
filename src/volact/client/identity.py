"""Which machine is this? The probes a client home uses to know where it runs.

A home records :func:`machine_fingerprint` of :func:`read_machine_id` (a salted hash,
never the id itself); a home later found on another machine (a copied directory, one
home shared by many machines) is re-armed, so one activation never serves two
machines (:func:`volact.client.state.rearm` with
:data:`~volact.client.state.MOVED_NOTICE`). :func:`detect_vm` is what a new home
reports to hosts unless told otherwise.

These functions read the local system (files under ``/etc``, ``/sys``, ``/proc``,
the host name); they decide nothing. Every caller can replace them, so tests never
depend on the machine they run on.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

#: Where the machine's identity is read, in order; the host name is the last resort.
MACHINE_ID_PATHS = (
    "/etc/machine-id",
    "/var/lib/dbus/machine-id",
    "/sys/class/dmi/id/product_uuid",
)
_FINGERPRINT_SALT = b"volact-machine"


def read_machine_id(
    paths: Sequence[str | Path] = MACHINE_ID_PATHS,
    hostname: Callable[[], str] = socket.gethostname,
) -> str:
    """This machine's identity: the first readable, non-empty id of ``paths``
    (systemd's machine id, D-Bus's, the DMI product UUID), else the host name."""
    for path in paths:
        try:
            text = Path(path).read_text(errors="replace").strip()
        except OSError:
            continue
        if text and text.lower() != "uninitialized":
            return text
    return hostname()


def machine_fingerprint(machine_id: str) -> str:
    """A salted SHA-256 of the machine id: what a home stores (never the id itself)."""
    return hashlib.sha256(_FINGERPRINT_SALT + b"\x00" + machine_id.encode()).hexdigest()


_VM_MARKERS = (
    "kvm",
    "qemu",
    "vmware",
    "virtualbox",
    "xen",
    "bochs",
    "hyper-v",
    "virtual machine",
    "bhyve",
    "parallels",
    "openstack",
    "google compute engine",
    "amazon ec2",
    "cloud hypervisor",
    "firecracker",
)


def detect_vm() -> bool:
    """Best effort: does this machine look virtual (DMI names, the CPU hypervisor flag)?"""
    for path in ("/sys/class/dmi/id/product_name", "/sys/class/dmi/id/sys_vendor"):
        try:
            text = Path(path).read_text(errors="replace").strip().lower()
        except OSError:
            continue
        if any(marker in text for marker in _VM_MARKERS):
            return True
    try:
        with open("/proc/cpuinfo", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return " hypervisor" in line
    except OSError:
        pass
    return False


def host_name() -> str:
    """The name a new home sends to hosts unless given one (the machine's host name)."""
    return socket.gethostname()


__all__ = [
    "MACHINE_ID_PATHS",
    "detect_vm",
    "host_name",
    "machine_fingerprint",
    "read_machine_id",
]
