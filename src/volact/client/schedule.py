"""Keeping a license over time: act when due, sleep until the next action, repeat.

:func:`run_schedule` (a thread's loop), :func:`run_schedule_async` (its asyncio
twin) and :class:`BackgroundSchedule` (a daemon thread running the first) drive an
:class:`~volact.client.api.Activation`: each step is ``activation.tick()``, which
attempts only when the machine's schedule says an attempt is due. When to wake
comes from :meth:`volact.client.machine.Machine.wake_at`; this module adds no
licensing policy, only the loop, the pauses and what a failed step does.

A step that raises a :class:`~volact.errors.VolactError` (a damaged state file, an
unreadable home, a refused document, a missing authority URL...) does not end the
schedule: the error is logged (``schedule_error``) and the next step comes one
activation interval later, so that an administrator can repair the home while the
product runs. Sleeps last at most ``max_sleep`` seconds, so that a change of the
system clock is noticed within that time. Tests pass a ``sleep`` that moves a fake
clock, and never wait.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from volact.errors import VolactError
from volact.wire import DEFAULT_ACTIVATION_INTERVAL, MINUTE

if TYPE_CHECKING:  # the api module imports this one; the arrow points one way at run time
    import asyncio

    from volact.client.api import Activation, Status

#: The longest a background schedule sleeps before looking again (seconds).
MAX_SLEEP_SECONDS = 3600.0

OnStep = Callable[["Status", bool], None]


def pause_after_error(status: Status | None, max_sleep: float) -> float:
    """The pause after a failed step: the activation interval, at most ``max_sleep``."""
    minutes = status.activation_interval if status is not None else DEFAULT_ACTIVATION_INTERVAL
    return float(max(1.0, min(max_sleep, minutes * MINUTE)))


def pause_until(now: int, wake: int | None, max_sleep: float) -> float:
    """The pause until ``wake`` (None: nothing to wait for), between 1 s and ``max_sleep``."""
    if wake is None:
        return max_sleep
    return float(max(1, min(max_sleep, wake - now)))


def _next_pause(activation: Activation, max_sleep: float) -> float:
    now = activation.now()
    return pause_until(now, activation.load().machine.wake_at(now), max_sleep)


def _log_error(activation: Activation, exc: VolactError) -> None:
    # The log may be what fails (a full disk): the schedule goes on regardless.
    with contextlib.suppress(VolactError):
        activation.log_events(
            [{"event": "schedule_error", "error": exc.__class__.__name__, "reason": str(exc)}]
        )


def run_schedule(
    activation: Activation,
    *,
    stop: threading.Event | None = None,
    on_step: OnStep | None = None,
    max_steps: int | None = None,
    sleep: Callable[[float], bool] | None = None,
    max_sleep: float = MAX_SLEEP_SECONDS,
) -> Status:
    """Keep ``activation``'s license until ``stop`` is set or after ``max_steps`` steps.

    ``sleep(seconds)`` returns True to stop (default: ``stop.wait``). ``on_step`` is
    called only with a status that could be read. Returns the last status.
    """
    stop = stop or threading.Event()
    wait = sleep or stop.wait
    steps = 0
    status: Status | None = None
    while not stop.is_set() and (max_steps is None or steps < max_steps):
        failed = False
        try:
            status, acted = activation.tick()
        except VolactError as exc:
            _log_error(activation, exc)
            failed, acted = True, False
        steps += 1
        if on_step is not None and status is not None:
            on_step(status, acted)
        if max_steps is not None and steps >= max_steps:
            break
        pause = (
            pause_after_error(status, max_sleep) if failed else _next_pause(activation, max_sleep)
        )
        if wait(pause):
            break
    return status if status is not None else activation.status()


async def run_schedule_async(
    activation: Activation,
    *,
    stop: asyncio.Event | None = None,
    on_step: OnStep | None = None,
    max_steps: int | None = None,
    max_sleep: float = MAX_SLEEP_SECONDS,
) -> Status:
    """The asyncio twin of :func:`run_schedule` (cancel the task, or set ``stop``)."""
    import asyncio  # only a product that runs the async schedule pays for it

    stop = stop or asyncio.Event()
    steps = 0
    status: Status | None = None
    while not stop.is_set() and (max_steps is None or steps < max_steps):
        failed = False
        try:
            status, acted = await activation.tick_async()
        except VolactError as exc:
            _log_error(activation, exc)
            failed, acted = True, False
        steps += 1
        if on_step is not None and status is not None:
            on_step(status, acted)
        if max_steps is not None and steps >= max_steps:
            break
        pause = (
            pause_after_error(status, max_sleep) if failed else _next_pause(activation, max_sleep)
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)
    return status if status is not None else activation.status()


class BackgroundSchedule:
    """A daemon thread that keeps an :class:`~volact.client.api.Activation`'s schedule
    until stopped (what ``Activation.start_background`` returns)."""

    def __init__(self, activation: Activation, on_step: OnStep | None):
        self._stop = threading.Event()
        self.last_status: Status | None = None
        self.error: BaseException | None = None

        def step(status: Status, acted: bool) -> None:
            self.last_status = status
            if on_step is not None:
                on_step(status, acted)

        def run() -> None:
            try:
                run_schedule(activation, stop=self._stop, on_step=step)
            except BaseException as exc:  # kept for the application to inspect
                self.error = exc

        self._thread = threading.Thread(target=run, name="volact-schedule", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


__all__ = [
    "MAX_SLEEP_SECONDS",
    "BackgroundSchedule",
    "pause_after_error",
    "pause_until",
    "run_schedule",
    "run_schedule_async",
]
