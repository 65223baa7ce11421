"""The client's license state machine: plain values in, plain values out.

A :class:`Machine` holds what the license schedule depends on (the installed key's
SKU and kind, when grace started, the validity of the last accepted ticket, the
intervals in force and the last attempt). Its transitions return a new
``Machine``; its queries say which :class:`~volact.wire.LicenseState` the machine is
in at ``now`` and when the caller should act next.

States (SPEC §7)::

    unlicensed --install key--> grace (30 days from install; retry every activation interval)
    grace/notification --ticket--> licensed (valid until the ticket says, 180 days;
                                   renew every renewal interval; after a failed
                                   renewal, retry every activation interval)
    grace --30 days--> notification;  licensed --validity ends--> notification
    MAK confirmation --> licensed for good

This module must not do I/O, read a clock or draw randomness: ``now`` (Unix seconds)
is always passed in, and it may jump backwards (a user can set the clock) without
breaking an invariant: a last attempt or an installation "in the future" (the clock
was once ahead and was set back) makes the next attempt due now and never lengthens
grace. A failure never moves a validity date.

An unsigned reply (COUNT_TOO_LOW) can be forged by anyone on the path, so its
intervals may only make the client retry *sooner*; intervals that lengthen the
schedule come only from a verified ticket (:meth:`Machine.succeeded`).

Moving (rebalance, drain): a verified ticket may ask the client to move. The grant
stands (validity as usual); the machine remembers which host asked
(:attr:`Machine.moving_from`) and its next attempt is due after the activation
interval instead of the renewal interval, so a drained host empties within one
renewal interval. The move ends with the next grant that does not ask to move
(from another host, or from the same one when the administrator stopped the
rebalance); a refusal or a failure keeps it, and never touches the validity.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from volact.errors import InvalidValue, UsageError
from volact.keys import KeyKind
from volact.wire import (
    DAY,
    DEFAULT_ACTIVATION_INTERVAL,
    DEFAULT_RENEWAL_INTERVAL,
    MAX_CLOCK_SKEW,
    MAX_INTERVAL,
    MIN_INTERVAL,
    MINUTE,
    VALIDITY_SECONDS,
    LicenseState,
)

#: Initial grace, from the installation of a key (ms).
GRACE_SECONDS = 30 * DAY
_U32_MAX = 0xFFFF_FFFF
#: How far a host's clock may be ahead of the client's when it issues a ticket (the
#: skew a host accepts in a request, SPEC §5).
MAX_TICKET_SKEW = MAX_CLOCK_SKEW
#: Slack on a ticket's validity beyond :data:`VALIDITY_SECONDS` after its issue.
VALIDITY_TOLERANCE = 3600


def implausible_validity(issued_at: int, valid_until: int, now: int) -> str | None:
    """Why a ticket's dates cannot be right at ``now`` (client clock), or None if plausible.

    A ticket is issued by a host whose clock is within the skew of the client's, is
    still valid, and is valid for at most 180 days (plus a little) from its issue: a
    host (or a stolen host key) cannot grant a ten-year activation.
    """
    if issued_at - MAX_TICKET_SKEW > now:
        return (
            f"the ticket was issued {(issued_at - now) // 60} minutes in the future "
            "(the host's clock or this machine's is wrong)"
        )
    if valid_until <= now:
        return "the ticket has already expired (the host's clock or this machine's is wrong)"
    if valid_until > issued_at + VALIDITY_SECONDS + VALIDITY_TOLERANCE:
        days = (valid_until - issued_at) // DAY
        return f"the ticket claims {days} days of validity; at most 180 are granted"
    return None


def clamp_interval(minutes: int) -> int:
    """An interval from the network, forced into the allowed range (never trusted raw)."""
    return max(MIN_INTERVAL, min(MAX_INTERVAL, int(minutes)))


@dataclass(frozen=True)
class Machine:
    """The license schedule of one machine, as values."""

    sku: uuid.UUID | None = None  #: the installed SKU; None while no key is installed
    key_kind: KeyKind | None = None  #: GVLK (host activation) or MAK (authority)
    installed_at: int | None = None  #: when the key was installed (or rearmed): grace start
    valid_until: int | None = None  #: end of validity of the last accepted ticket
    permanent: bool = False  #: activated by a MAK confirmation, which never expires
    activation_interval: int = DEFAULT_ACTIVATION_INTERVAL  #: minutes between retries
    renewal_interval: int = DEFAULT_RENEWAL_INTERVAL  #: minutes between renewals
    intervals_from_host: bool = False  #: a host's intervals replaced the defaults
    last_attempt_at: int | None = None  #: when the last attempt ended
    last_attempt_ok: bool = False  #: the last attempt was granted
    last_success_at: int | None = None  #: when the last activation or renewal was granted
    #: the host (``HOST:PORT`` as it was reached) whose last ticket asked this machine
    #: to move; None when no move is under way
    moving_from: str | None = None

    def __post_init__(self) -> None:
        if (self.sku is None) != (self.key_kind is None) or (self.sku is None) != (
            self.installed_at is None
        ):
            raise InvalidValue("sku, key_kind and installed_at are set together or not at all")
        if self.key_kind is KeyKind.HOST:
            raise InvalidValue("a host key cannot be installed on a client")
        if self.permanent and self.key_kind is not KeyKind.MAK:
            raise InvalidValue("only a MAK activation is permanent")
        for iv in (self.activation_interval, self.renewal_interval):
            if not MIN_INTERVAL <= iv <= MAX_INTERVAL:
                raise InvalidValue(f"interval {iv} min is outside {MIN_INTERVAL}..{MAX_INTERVAL}")
        if self.sku is None and (self.valid_until is not None or self.last_attempt_at is not None):
            raise InvalidValue("a machine with no key has no activation and no attempts")

    # ---- queries -------------------------------------------------------------------

    @property
    def grace_until(self) -> int | None:
        """End of the initial grace as recorded, or None when no key is installed."""
        return None if self.installed_at is None else self.installed_at + GRACE_SECONDS

    def grace_end(self, now: int) -> int | None:
        """End of the initial grace as seen at ``now``.

        An installation after ``now`` (the clock was ahead then) counts as made at
        ``now``: setting the clock back never lengthens grace. The next transition
        records that (see :meth:`_rebased`).
        """
        if self.installed_at is None:
            return None
        return min(self.installed_at, now) + GRACE_SECONDS

    def state(self, now: int) -> LicenseState:
        if self.sku is None:
            return LicenseState.UNLICENSED
        if self.permanent or (self.valid_until is not None and now < self.valid_until):
            return LicenseState.LICENSED
        grace_until = self.grace_end(now)
        if grace_until is not None and now < grace_until:
            return LicenseState.GRACE
        return LicenseState.NOTIFICATION

    def activated(self, now: int) -> bool:
        return self.state(now) is LicenseState.LICENSED

    def minutes_left(self, now: int) -> int:
        """Minutes left in validity (licensed) or grace; 0 when none or permanent."""
        state = self.state(now)
        end: int | None = None
        if state is LicenseState.LICENSED and not self.permanent:
            end = self.valid_until
        elif state is LicenseState.GRACE:
            end = self.grace_end(now)
        if end is None:
            return 0
        return max(0, min(_U32_MAX, (end - now) // MINUTE))

    def next_action_at(self, now: int) -> int | None:
        """When to attempt activation (or renewal) next, seen at ``now``; None when
        nothing is to do.

        A last attempt (or an installation) recorded after ``now`` means the clock
        was ahead and has been set back: the schedule counted from that moment
        could be years away, so the next attempt is due at once.
        """
        if self.sku is None or self.installed_at is None or self.permanent:
            return None
        if self.last_attempt_at is None:
            return min(self.installed_at, now)  # a fresh key: act at once
        if self.last_attempt_at > now:
            return now
        # A move is made at the next retry, not a renewal interval later.
        renew = self.last_attempt_ok and self.moving_from is None
        interval = self.renewal_interval if renew else self.activation_interval
        return self.last_attempt_at + interval * MINUTE

    def next_change_at(self, now: int) -> int | None:
        """The next time after ``now`` when :meth:`state` changes by itself (for a notice)."""
        state = self.state(now)
        if state is LicenseState.LICENSED and not self.permanent:
            return self.valid_until
        if state is LicenseState.GRACE:
            return self.grace_end(now)
        return None

    def wake_at(self, now: int) -> int | None:
        """When a scheduler should next wake: an action is due or the state changes."""
        times = [t for t in (self.next_action_at(now), self.next_change_at(now)) if t is not None]
        return min(times) if times else None

    def due(self, now: int) -> bool:
        at = self.next_action_at(now)
        return at is not None and now >= at

    # ---- transitions ---------------------------------------------------------------

    def install(self, now: int, sku: uuid.UUID, kind: KeyKind) -> Machine:
        """A key was installed. Another SKU or kind drops the activation and restarts grace."""
        if kind is KeyKind.HOST:
            raise UsageError("a host key activates a key management host, not a client")
        if self.sku == sku and self.key_kind is kind:
            return self
        return Machine(
            sku=sku,
            key_kind=kind,
            installed_at=now,
            activation_interval=self.activation_interval,
            renewal_interval=self.renewal_interval,
            intervals_from_host=self.intervals_from_host,
        )

    def uninstall(self) -> Machine:
        """Back to unlicensed (keeps the host's intervals)."""
        return Machine(
            activation_interval=self.activation_interval,
            renewal_interval=self.renewal_interval,
            intervals_from_host=self.intervals_from_host,
        )

    def rearm(self, now: int) -> Machine:
        """A machine made from an image: drop activation, restart grace, keep the key."""
        if self.sku is None or self.key_kind is None:
            return self.uninstall()
        return replace(self.uninstall(), sku=self.sku, key_kind=self.key_kind, installed_at=now)

    def _require_key(self, what: str) -> None:
        if self.sku is None:
            raise UsageError(f"cannot record {what}: no product key is installed")

    def _rebased(self, now: int) -> Machine:
        """An installation recorded after ``now`` is moved to ``now`` (grace never grows)."""
        if self.installed_at is not None and self.installed_at > now:
            return replace(self, installed_at=now)
        return self

    def succeeded(
        self,
        now: int,
        *,
        valid_until: int,
        activation_interval: int,
        renewal_interval: int,
        move_from: str | None = None,
    ) -> Machine:
        """A host granted activation: a verified ticket with this validity and intervals.

        ``move_from`` is the host that granted, when its (signed) ticket asked the
        machine to move; None ends any move under way.
        """
        self._require_key("an activation")
        if self.key_kind is not KeyKind.GVLK:
            raise UsageError("a host ticket activates a machine with a setup key (GVLK) only")
        # A later grant never shortens what an earlier one gave (clocks may disagree).
        until = valid_until if self.valid_until is None else max(self.valid_until, valid_until)
        return replace(
            self._rebased(now),
            valid_until=until,
            activation_interval=clamp_interval(activation_interval),
            renewal_interval=clamp_interval(renewal_interval),
            intervals_from_host=True,
            last_attempt_at=now,
            last_attempt_ok=True,
            last_success_at=now,
            moving_from=move_from,
        )

    def count_too_low(self, now: int, *, activation_interval: int) -> Machine:
        """A host answered but has not counted enough machines.

        The reply is unsigned: its activation interval is taken only if it is not
        longer than the one in force (a forged reply must not delay the client for
        its whole grace), and its renewal interval is not taken at all.
        """
        self._require_key("a reply")
        offered = clamp_interval(activation_interval)
        shorter = offered < self.activation_interval
        return replace(
            self._rebased(now),
            activation_interval=offered if shorter else self.activation_interval,
            intervals_from_host=self.intervals_from_host or shorter,
            last_attempt_at=now,
            last_attempt_ok=False,
        )

    def failed(self, now: int) -> Machine:
        """No host granted (none answered, refused, or sent something unverifiable)."""
        self._require_key("a failure")
        return replace(self._rebased(now), last_attempt_at=now, last_attempt_ok=False)

    def mak_activated(self, now: int) -> Machine:
        """The vendor confirmed this machine's MAK activation: permanent."""
        self._require_key("a MAK activation")
        if self.key_kind is not KeyKind.MAK:
            raise UsageError("a MAK confirmation needs a MAK installed")
        return replace(
            self._rebased(now),
            permanent=True,
            last_attempt_at=now,
            last_attempt_ok=True,
            last_success_at=now,
        )

    def with_validity(self, valid_until: int | None, permanent: bool) -> Machine:
        """The same machine with validity taken from re-verified documents (on load)."""
        return replace(self, valid_until=valid_until, permanent=permanent)
