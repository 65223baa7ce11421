"""Token buckets for the activation endpoints: per key and per client address.

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; a
request takes one or is refused. State is kept in process memory (each worker
limits on its own, so N workers allow up to N times the rate: good enough to stop
a runaway script, which is the point). No clock and no I/O: ``now`` is a
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

    def allow(self, name: str, now: float) -> float:
        """0.0 if a request named ``name`` may go now, else seconds until it may."""
        if self.limit.rate <= 0:
            return 0.0
        with self._lock:
            tokens, last = self._buckets.get(name, (float(self.limit.burst), now))
            tokens = min(float(self.limit.burst), tokens + (now - last) * self.limit.rate)
            if tokens < 1.0:
                self._buckets[name] = (tokens, now)
                return (1.0 - tokens) / self.limit.rate
            self._buckets[name] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._evict(now)
            return 0.0

    def _evict(self, now: float) -> None:
        # A bucket that has refilled completely carries no state worth keeping.
        full = self.limit.burst / self.limit.rate
        for name in [n for n, (_, last) in self._buckets.items() if now - last >= full]:
            del self._buckets[name]
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.pop(next(iter(self._buckets)))
