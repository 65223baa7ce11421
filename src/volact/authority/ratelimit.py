"""Token buckets for the activation endpoints: per key and per client address.

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; a
request takes as many tokens as the work it asks for (one for a single
activation, more for a batch) or is refused, and work found only while serving
it (locating a typo) is charged afterwards, which may leave the bucket in debt.
State is kept in process memory (each worker limits on its own, so N workers
allow up to N times the rate: good enough to stop a runaway script, which is the
point). No clock and no I/O: ``now`` is a
monotonic time in seconds passed in by the caller.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from volact.errors import InvalidValue

#: Buckets kept before idle ones are dropped (bounds memory under address scans).
MAX_BUCKETS = 100_000


@dataclass(frozen=True)
class RateLimit:
    """A rate limit's settings."""

    rate: float  #: tokens added per second; 0 disables limiting
    burst: int  #: most tokens a bucket holds

    def __post_init__(self) -> None:
        if self.rate < 0 or self.burst < 1:
            raise InvalidValue("a rate limit needs rate >= 0 and burst >= 1")


class RateLimiter:
    """Many named buckets with one setting; thread-safe."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, last)
        self._lock = threading.Lock()

    def allow(self, name: str, now: float, cost: float = 1.0) -> float:
        """0.0 if a request named ``name`` costing ``cost`` tokens may go now (and
        take them), else seconds until it may. A cost above the burst costs the burst."""
        if self.limit.rate <= 0:
            return 0.0
        cost = min(cost, float(self.limit.burst))
        with self._lock:
            tokens = self._refill(name, now)
            if tokens < cost:
                self._buckets[name] = (tokens, now)
                return (cost - tokens) / self.limit.rate
            self._buckets[name] = (tokens - cost, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._evict(now)
            return 0.0

    def charge(self, name: str, now: float, cost: float) -> None:
        """Take ``cost`` more tokens for work already done; the bucket may go into
        debt (down to minus the burst), which later requests wait out."""
        if self.limit.rate <= 0 or cost <= 0:
            return
        with self._lock:
            tokens = self._refill(name, now)
            self._buckets[name] = (max(-float(self.limit.burst), tokens - cost), now)

    def _refill(self, name: str, now: float) -> float:
        tokens, last = self._buckets.get(name, (float(self.limit.burst), now))
        return min(float(self.limit.burst), tokens + (now - last) * self.limit.rate)

    def _evict(self, now: float) -> None:
        # A bucket that has refilled completely carries no state worth keeping.
        for name in [
            n for n, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.limit.rate >= self.limit.burst
        ]:  # fmt: skip
            del self._buckets[name]
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.pop(next(iter(self._buckets)))
