"""Rebalancing and draining a host: which clients are asked to move, and the progress.

A host that rebalances still grants every renewal, and asks a stable share of its
clients, inside the signed ticket (version 2, ``docs/protocol.md``), to re-discover
another host. Which clients is decided from the CMID alone (and this host's id), so
the same machines are chosen at every renewal and the share is exact in
expectation; raising the share only adds machines to the chosen set. ``--share
100`` is a drain: every client is asked.

This module is sans-I/O (it takes ``now``): the host policy and the fleet
simulator use it. The setting on disk, and how a running host notices that it
changed, are :mod:`volact.host.rebalance_file`'s.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from volact.errors import ConfigurationError

REBALANCE_FORMAT = "volact-host-rebalance"
REBALANCE_VERSION = 1
#: Shares are kept in basis points: 1 % is 100, a drain is 10 000.
FULL_SHARE = 10_000
#: A client asked to move tries again after one activation interval; one that has
#: not come back after this many intervals has left (or is switched off).
LEAVE_AFTER_INTERVALS = 2

_SALT = b"volact-move\x00"


def bucket(cmid: bytes, host_id: bytes) -> int:
    """The machine's fixed place in ``0 .. FULL_SHARE - 1`` for this host.

    Uniform over CMIDs (SHA-256), stable for a machine, and different per host:
    a client that moved from host A is not automatically in host B's share.
    """
    h = int.from_bytes(hashlib.sha256(_SALT + host_id + cmid).digest()[:8], "big")
    return (h * FULL_SHARE) >> 64


def selects(cmid: bytes, host_id: bytes, share: int) -> bool:
    """Whether a host asking ``share`` basis points of its clients to move asks this one."""
    return bucket(cmid, host_id) < share


def share_from_percent(percent: float) -> int:
    """``--share PERCENT`` (0 < PERCENT <= 100, at most two decimals) in basis points."""
    if not isinstance(percent, int | float) or isinstance(percent, bool):
        raise ConfigurationError(f"a share is a number of percent, not {percent!r}")
    if not math.isfinite(percent) or not 0 < percent <= 100:
        raise ConfigurationError(
            f"the share must be more than 0 and at most 100 percent, not {percent}"
        )
    bp = round(percent * 100)
    if abs(bp - percent * 100) > 1e-6 or bp == 0:
        raise ConfigurationError(
            f"the share takes at most two decimals (0.01 to 100), not {percent}"
        )
    return bp


@dataclass(frozen=True, slots=True)
class Rebalance:
    """A host's standing request that a share of its clients move elsewhere."""

    share: int  #: basis points of clients asked to move (10 000 = drain)
    since: int  #: when the administrator set it, Unix seconds

    def __post_init__(self) -> None:
        if not 0 < self.share <= FULL_SHARE:
            raise ConfigurationError(f"a rebalance share is 1..{FULL_SHARE} basis points")

    @property
    def draining(self) -> bool:
        return self.share >= FULL_SHARE

    @property
    def percent(self) -> float:
        return self.share / 100

    def selects(self, cmid: bytes, host_id: bytes) -> bool:
        return selects(cmid, host_id, self.share)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REBALANCE_FORMAT,
            "version": REBALANCE_VERSION,
            "share": self.percent,
            "since": self.since,
        }

    @classmethod
    def from_json(cls, o: Any) -> Rebalance:
        if not isinstance(o, dict) or o.get("format") != REBALANCE_FORMAT:
            raise ConfigurationError("not a volact rebalance setting")
        if o.get("version") != REBALANCE_VERSION:
            raise ConfigurationError(f"rebalance setting version {o.get('version')!r} is unknown")
        since = o.get("since")
        if not isinstance(since, int) or isinstance(since, bool) or since < 0:
            raise ConfigurationError(f"rebalance 'since' must be Unix seconds, not {since!r}")
        share = o.get("share")
        if not isinstance(share, int | float) or isinstance(share, bool):
            raise ConfigurationError(f"rebalance 'share' must be a percentage, not {share!r}")
        return cls(share_from_percent(share), since)


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a rebalance has gone, as ``volact host status --json`` shows it."""

    told: int  #: distinct clients told to move since the rebalance began
    remaining: int  #: clients still renewing here (seen within a renewal interval, not departed)
    left: int  #: clients told to move that have not come back since


def leave_after(activation_interval: int) -> int:
    """Seconds after its last "move" ticket when a client that has not come back has left."""
    return LEAVE_AFTER_INTERVALS * activation_interval * 60


def windows(now: int, *, activation_interval: int, renewal_interval: int) -> tuple[int, int]:
    """``(active_since, left_before)`` for the store's figures at ``now``.

    A client still renews here when it was seen within one renewal interval (plus
    the leave delay, for slack); a client told to move has left when its last
    contact is that "move" grant and it is older than :func:`leave_after`.
    """
    delay = leave_after(activation_interval)
    return now - renewal_interval * 60 - delay, now - delay


def progress(*, told: int, active: int, left: int) -> Progress:
    """A :class:`Progress` from three figures: clients told, clients still renewing
    here before departures (``active``) and told clients that have not come back
    (``left``)."""
    return Progress(told=told, remaining=max(0, active - left), left=left)


def status_json(
    rb: Rebalance | None, prog: Progress | None, *, now: int, in_count: int
) -> dict[str, Any] | None:
    """The ``rebalance`` object of ``host status --json`` (None when not rebalancing)."""
    if rb is None or prog is None:
        return None
    return {
        "share": rb.percent,
        "since": rb.since,
        "draining": rb.draining,
        "told": prog.told,
        "left": prog.left,
        "remaining": prog.remaining,
        "empty": rb.draining and prog.remaining == 0,
        "in_count": in_count,
        "elapsed": max(0, now - rb.since),
    }


__all__ = [
    "FULL_SHARE",
    "Progress",
    "Rebalance",
    "bucket",
    "leave_after",
    "progress",
    "selects",
    "share_from_percent",
    "status_json",
    "windows",
]
