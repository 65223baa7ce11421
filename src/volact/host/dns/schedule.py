"""When each domain is due again: republish every 24 h, retry with exponential backoff.

No clock: every method takes ``now`` (Unix seconds).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from volact.host.dns.outcomes import Outcome
from volact.host.dns.settings import REPUBLISH_INTERVAL, RETRY_INITIAL, RETRY_MAX, DnsSettings


@dataclass(frozen=True)
class Backoff:
    """When to try again: republish after success, exponential backoff after failure."""

    initial: int = RETRY_INITIAL  #: first retry delay, seconds
    cap: int = RETRY_MAX  #: longest retry delay, seconds
    republish: int = REPUBLISH_INTERVAL  #: delay after a success, seconds

    def delay(self, failures: int) -> int:
        """Seconds until the next attempt after ``failures`` consecutive failures (0 = ok)."""
        if failures <= 0:
            return self.republish
        # Shift bounded so a long outage cannot build a huge integer.
        return min(self.cap, self.initial << min(failures - 1, 40))

    @classmethod
    def of(cls, settings: DnsSettings) -> Backoff:
        return cls(settings.retry_initial, settings.retry_max, settings.republish_interval)


@dataclass(frozen=True)
class DomainState:
    """What the publisher knows about one domain."""

    domain: str  #: the zone
    next_attempt: int  #: Unix seconds when it is due
    failures: int = 0  #: consecutive failures since the last success
    last_attempt: int | None = None  #: Unix seconds of the last try
    last_ok: int | None = None  #: Unix seconds of the last success
    last_error: str | None = None  #: reason of the last failure, cleared on success

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "next_attempt": self.next_attempt,
            "failures": self.failures,
            "last_attempt": self.last_attempt,
            "last_ok": self.last_ok,
            "last_error": self.last_error,
        }


class PublishSchedule:
    """Which domains are due, and when the next one is: one state per domain.

    Every domain is due at ``now`` when the schedule is made (publish when the
    service starts). Feed each :class:`Outcome` back with :meth:`record`.
    """

    def __init__(self, domains: Iterable[str], backoff: Backoff, now: int) -> None:
        self.backoff = backoff
        self.states: dict[str, DomainState] = {d: DomainState(d, now) for d in domains}

    def due(self, now: int) -> list[str]:
        return [d for d, s in self.states.items() if s.next_attempt <= now]

    def next_wakeup(self) -> int | None:
        """Unix seconds of the earliest due domain, None when there are none."""
        return min((s.next_attempt for s in self.states.values()), default=None)

    def record(self, outcome: Outcome, now: int) -> DomainState:
        old = self.states.get(outcome.domain) or DomainState(outcome.domain, now)
        if outcome.ok:
            new = replace(
                old,
                failures=0,
                last_attempt=now,
                last_ok=now,
                last_error=None,
                next_attempt=now + self.backoff.delay(0),
            )
        else:
            failures = old.failures + 1
            new = replace(
                old,
                failures=failures,
                last_attempt=now,
                last_error=outcome.detail,
                next_attempt=now + self.backoff.delay(failures),
            )
        self.states[outcome.domain] = new
        return new
