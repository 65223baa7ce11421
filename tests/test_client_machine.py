"""The client's license state machine, with the clock moved by hand (no I/O)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from volact.client.machine import (
    DAY,
    DEFAULT_ACTIVATION_INTERVAL,
    DEFAULT_RENEWAL_INTERVAL,
    GRACE_SECONDS,
    MAX_INTERVAL,
    MIN_INTERVAL,
    MINUTE,
    VALIDITY_SECONDS,
    Machine,
    clamp_interval,
    implausible_validity,
)
from volact.errors import UsageError
from volact.keys import KeyKind
from volact.wire import LicenseState

T0 = 1_800_000_000
SKU = uuid.UUID(int=1)
OTHER = uuid.UUID(int=2)


def installed(now: int = T0, kind: KeyKind = KeyKind.GVLK) -> Machine:
    return Machine().install(now, SKU, kind)


def test_unlicensed_has_nothing_to_do() -> None:
    m = Machine()
    assert m.state(T0) is LicenseState.UNLICENSED
    assert m.next_action_at(T0) is None and m.wake_at(T0) is None
    assert m.minutes_left(T0) == 0


def test_grace_runs_30_days_from_install_and_acts_at_once() -> None:
    m = installed()
    assert m.state(T0) is LicenseState.GRACE
    assert m.next_action_at(T0) == T0
    assert m.minutes_left(T0) == 30 * 24 * 60
    assert m.state(T0 + GRACE_SECONDS - 1) is LicenseState.GRACE
    assert m.state(T0 + GRACE_SECONDS) is LicenseState.NOTIFICATION


def test_failure_retries_at_activation_interval_and_keeps_grace() -> None:
    m = installed().failed(T0 + 10)
    assert m.next_action_at(T0 + 10) == T0 + 10 + DEFAULT_ACTIVATION_INTERVAL * MINUTE
    assert m.grace_until == T0 + GRACE_SECONDS


def test_success_renews_at_renewal_interval_then_retries_after_failure() -> None:
    m = installed().succeeded(
        T0, valid_until=T0 + 180 * DAY, activation_interval=120, renewal_interval=7 * 24 * 60
    )
    assert m.state(T0) is LicenseState.LICENSED
    assert m.next_action_at(T0) == T0 + 7 * DAY
    m2 = m.failed(T0 + 7 * DAY)
    assert m2.next_action_at(T0 + 7 * DAY) == T0 + 7 * DAY + 120 * MINUTE
    assert m2.valid_until == T0 + 180 * DAY
    assert m2.state(T0 + 180 * DAY - 1) is LicenseState.LICENSED
    assert m2.state(T0 + 180 * DAY) is LicenseState.NOTIFICATION
    assert m2.next_change_at(T0 + 8 * DAY) == T0 + 180 * DAY


def test_ticket_intervals_replace_the_clients_and_are_clamped() -> None:
    m = installed().succeeded(
        T0, valid_until=T0 + 180 * DAY, activation_interval=30, renewal_interval=60
    )
    assert (m.activation_interval, m.renewal_interval) == (30, 60)
    hostile = installed().succeeded(
        T0, valid_until=T0 + DAY, activation_interval=0, renewal_interval=2**32 - 1
    )
    assert hostile.activation_interval == MIN_INTERVAL
    assert hostile.renewal_interval == MAX_INTERVAL
    assert clamp_interval(-5) == MIN_INTERVAL


def test_an_unsigned_count_too_low_can_shorten_the_retry_but_never_lengthen_it() -> None:
    m = installed().count_too_low(T0, activation_interval=30)
    assert (m.activation_interval, m.renewal_interval) == (30, DEFAULT_RENEWAL_INTERVAL)
    assert m.next_action_at(T0) == T0 + 30 * MINUTE
    # A forged reply asking for 30 days between retries would burn the whole grace.
    forged = installed().count_too_low(T0, activation_interval=MAX_INTERVAL)
    assert forged.activation_interval == DEFAULT_ACTIVATION_INTERVAL
    assert forged.next_action_at(T0) == T0 + DEFAULT_ACTIVATION_INTERVAL * MINUTE
    assert not forged.intervals_from_host
    # Nor can it lengthen what a shorter reply (or a signed ticket) set.
    assert m.count_too_low(T0, activation_interval=60).activation_interval == 30
    assert installed().count_too_low(T0, activation_interval=0).activation_interval == MIN_INTERVAL


def test_a_clock_set_back_makes_the_next_attempt_due_now() -> None:
    # The clock was 10 years ahead at the last attempt, then corrected.
    ahead = T0 + 3650 * DAY
    m = installed().failed(ahead)
    assert m.next_action_at(T0) == T0 and m.due(T0) and m.wake_at(T0) == T0
    ok = installed().succeeded(
        ahead, valid_until=ahead + 180 * DAY, activation_interval=120, renewal_interval=10080
    )
    assert ok.due(T0)
    # The attempt made now brings the schedule back to the real clock.
    assert m.failed(T0).next_action_at(T0) == T0 + DEFAULT_ACTIVATION_INTERVAL * MINUTE


def test_an_install_in_the_future_does_not_extend_grace() -> None:
    ahead = T0 + 3650 * DAY
    m = installed(ahead)  # the key was installed while the clock was 10 years ahead
    assert m.next_action_at(T0) == T0 and m.due(T0)
    assert m.grace_end(T0) == T0 + GRACE_SECONDS  # not ahead + 30 days
    assert m.minutes_left(T0) == 30 * 24 * 60
    assert m.next_change_at(T0) == T0 + GRACE_SECONDS
    # The next transition records the corrected start, so grace ends for good.
    later = m.failed(T0)
    assert later.installed_at == T0
    assert later.state(T0 + GRACE_SECONDS) is LicenseState.NOTIFICATION


def test_implausible_ticket_dates() -> None:
    assert implausible_validity(T0, T0 + 180 * DAY, T0) is None
    assert implausible_validity(T0 + 3 * 3600, T0 + 180 * DAY, T0) is None  # host skew
    assert "future" in (implausible_validity(T0 + 5 * 3600, T0 + 180 * DAY, T0) or "")
    assert "expired" in (implausible_validity(T0 - 10, T0, T0) or "")
    assert "days of validity" in (implausible_validity(T0, T0 + 3650 * DAY, T0) or "")
    assert implausible_validity(T0, T0 + VALIDITY_SECONDS + 60, T0) is None  # tolerance


def test_mak_is_permanent() -> None:
    m = installed(kind=KeyKind.MAK).mak_activated(T0)
    assert m.state(T0 + 10_000 * DAY) is LicenseState.LICENSED
    assert m.next_action_at(T0) is None
    with pytest.raises(UsageError):
        installed().mak_activated(T0)  # a GVLK machine cannot take a MAK confirmation


def test_rearm_and_new_sku_drop_activation_and_restart_grace() -> None:
    m = installed().succeeded(
        T0, valid_until=T0 + 180 * DAY, activation_interval=60, renewal_interval=600
    )
    r = m.rearm(T0 + 5 * DAY)
    assert r.valid_until is None and r.sku == SKU and r.installed_at == T0 + 5 * DAY
    assert r.state(T0 + 5 * DAY) is LicenseState.GRACE
    assert r.activation_interval == 60  # the host's intervals stay known
    other = m.install(T0 + DAY, OTHER, KeyKind.GVLK)
    assert other.valid_until is None and other.installed_at == T0 + DAY
    assert m.install(T0 + DAY, SKU, KeyKind.GVLK) is m  # the same key again: no change


def test_host_key_refused_and_events_without_key_refused() -> None:
    with pytest.raises(UsageError):
        Machine().install(T0, SKU, KeyKind.HOST)
    with pytest.raises(UsageError):
        Machine().failed(T0)


# ---- property test -----------------------------------------------------------------

times = st.integers(min_value=T0 - 400 * DAY, max_value=T0 + 800 * DAY)
intervals = st.integers(min_value=-10, max_value=2**32 - 1)
events = st.one_of(
    st.tuples(st.just("install"), times, st.sampled_from([SKU, OTHER]),
              st.sampled_from([KeyKind.GVLK, KeyKind.MAK])),
    st.tuples(st.just("success"), times, times, intervals, intervals),
    st.tuples(st.just("too_low"), times, intervals),
    st.tuples(st.just("fail"), times),
    st.tuples(st.just("mak"), times),
    st.tuples(st.just("rearm"), times),
    st.tuples(st.just("uninstall"), times),
)  # fmt: skip


def check_valid(m: Machine, now: int) -> None:
    state = m.state(now)
    assert state in LicenseState
    assert MIN_INTERVAL <= m.activation_interval <= MAX_INTERVAL
    assert MIN_INTERVAL <= m.renewal_interval <= MAX_INTERVAL
    if m.sku is None:
        assert state is LicenseState.UNLICENSED and m.next_action_at(now) is None
    else:
        assert state is not LicenseState.UNLICENSED
    if m.permanent:
        assert m.key_kind is KeyKind.MAK and state is LicenseState.LICENSED
        assert m.next_action_at(now) is None
    if state is LicenseState.LICENSED and not m.permanent:
        assert m.valid_until is not None and now < m.valid_until
    assert 0 <= m.minutes_left(now) <= 0xFFFFFFFF
    wake = m.wake_at(now)
    if m.sku is not None and not m.permanent:
        assert wake is not None  # a machine with a key always has a next step
        at = m.next_action_at(now)
        # Never scheduled further than the longest interval, whatever the clock did.
        assert at is not None and at <= now + MAX_INTERVAL * MINUTE
        grace = m.grace_end(now)
        assert grace is not None and grace <= now + GRACE_SECONDS
    Machine(**m.__dict__)  # the constructor's own checks hold


def apply(m: Machine, ev: tuple) -> Machine:  # type: ignore[type-arg]
    kind, now = ev[0], ev[1]
    if kind == "install":
        return m.install(now, ev[2], ev[3])
    if kind == "success":
        return m.succeeded(
            now, valid_until=ev[2], activation_interval=ev[3], renewal_interval=ev[4]
        )
    if kind == "too_low":
        return m.count_too_low(now, activation_interval=ev[2])
    if kind == "fail":
        return m.failed(now)
    if kind == "mak":
        return m.mak_activated(now)
    if kind == "rearm":
        return m.rearm(now)
    return m.uninstall()


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=40), times)
def test_any_event_sequence_leaves_a_valid_state(seq: list[tuple], probe: int) -> None:  # type: ignore[type-arg]
    m = Machine()
    for ev in seq:
        before = m
        try:
            m = apply(m, ev)
        except UsageError:
            assert m is before  # a refused event changes nothing
            continue
        check_valid(m, ev[1])
        check_valid(m, probe)
        if ev[0] in ("fail", "too_low"):
            # A failure never moves a validity date, and never lengthens the grace.
            assert m.valid_until == before.valid_until
            assert before.grace_until is not None and m.grace_until is not None
            assert m.grace_until <= before.grace_until
            assert m.permanent == before.permanent
        if ev[0] == "too_low":
            # An unsigned reply never lengthens the schedule.
            assert m.activation_interval <= before.activation_interval
            assert m.renewal_interval == before.renewal_interval
        if ev[0] == "success":
            assert before.valid_until is None or m.valid_until >= before.valid_until
