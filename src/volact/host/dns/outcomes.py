"""How one update's result is described: success with its records, or why it failed.

No I/O: :mod:`volact.host.dns.updates` classifies the failures it meets.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from volact.host.dns.plans import Change


class FailureKind(Enum):
    """Why an update did not go through, as the event log and status name it."""

    REFUSED = "refused"  #: the server answered REFUSED (policy or unsigned update)
    NOTAUTH = "notauth"  #: NOTAUTH: not authoritative, or TSIG failed
    BADKEY = "badkey"  #: the server does not know the key (name or algorithm)
    BADSIG = "badsig"  #: the server knows the key name, the signature is wrong
    BADTIME = "badtime"  #: clocks differ by more than the TSIG fudge
    RCODE = "rcode"  #: another DNS error code (SERVFAIL, NOTZONE, ...)
    TIMEOUT = "timeout"  #: no answer in time
    UNREACHABLE = "unreachable"  #: connection refused / network down
    CONFIG = "config"  #: our own settings or key file are wrong
    OWNED = "owned"  #: another volact host owns the name (its marker); nothing changed
    ERROR = "error"  #: anything else (a malformed reply, ...)


@dataclass(frozen=True)
class Outcome:
    """The result of publishing into (or unpublishing from) one domain."""

    domain: str  #: the zone
    ok: bool  #: whether the server accepted the update
    detail: str  #: the records (on success) or the reason (on failure)
    kind: FailureKind | None = None  #: why it failed; None on success
    server: str | None = None  #: the server that answered last
    #: on success, the rdatas this host now has in the zone (what ``dns-state.json`` keeps)
    records: tuple[Change, ...] = ()
    #: on a successful take-over, the host id (hex) that owned the name before
    taken_from: str | None = None

    def message(self) -> str:
        """The host event's message: ``corp.example: <detail>``."""
        where = f" (server {self.server})" if self.server else ""
        return f"{self.domain}: {self.detail}{where}"
