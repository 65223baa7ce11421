"""Bounded floods against a host on loopback, for tests and ``bench/attacks.py``.

:func:`slot_attack` is issue 11's first attack: a few addresses open as many idle
connections as the host lets them and reopen each one the moment it is closed,
while a legitimate client (another address) makes its exchanges one after the
other; the result says how many of those succeeded. Everything runs on loopback
(127.0.0.0/8: any 127.x.y.z is a local address, so each attacker gets its own /24)
and is bounded in connections opened and in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from volact import wire
from volact.client.srv import HostAddress
from volact.client.transport import exchange_async
from volact.errors import DecodeError, TransportError


@dataclass(frozen=True)
class SlotAttackResult:
    """What the legitimate client saw while the attackers held connections."""

    attempts: int  #: exchanges the legitimate client tried
    successes: int  #: ...that got a whole activation reply
    attacker_connections: int  #: connections the attackers opened in all
    seconds: float  #: how long the legitimate client's part took

    @property
    def success_rate(self) -> float:
        return self.successes / self.attempts if self.attempts else 0.0


async def _hold(
    host: str, port: int, source: str, stop: asyncio.Event, opened: list[int], max_opens: int
) -> None:
    """One attacker connection slot: connect, send nothing, reconnect when closed."""
    while not stop.is_set() and opened[0] < max_opens:
        opened[0] += 1
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=(source, 0)), 2.0
            )
        except (OSError, TimeoutError):
            await asyncio.sleep(0.01)
            continue
        try:
            stopped = asyncio.ensure_future(stop.wait())
            read = asyncio.ensure_future(reader.read(1))
            await asyncio.wait({stopped, read}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            for t in (stopped, read):
                t.cancel()
                with contextlib.suppress(BaseException):
                    await t
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()


async def slot_attack(
    host: str,
    port: int,
    request: bytes,
    *,
    sources: Sequence[str] = ("127.0.1.1", "127.0.2.1", "127.0.3.1", "127.0.4.1"),
    per_source: int = 256,
    attempts: int = 100,
    exchange_timeout: float = 2.0,
    max_opens: int = 50_000,
    settle: float = 1.0,
) -> SlotAttackResult:
    """Hold ``per_source`` idle connections from each of ``sources``; count legitimate successes.

    The legitimate client connects from 127.0.0.1 and sends ``request`` (an
    activation request frame) ``attempts`` times, one after the other, each bounded
    by ``exchange_timeout``; the attackers stop after ``max_opens`` connections.
    """
    stop = asyncio.Event()
    opened = [0]
    holders = [
        asyncio.ensure_future(_hold(host, port, src, stop, opened, max_opens))
        for src in sources
        for _ in range(per_source)
    ]
    try:
        await asyncio.sleep(settle)  # let the attackers take their slots first
        address = HostAddress(host, port)
        successes = 0
        started = time.monotonic()
        for _ in range(attempts):
            try:
                reply = await exchange_async(address, request, exchange_timeout)
                if isinstance(wire.decode(reply), wire.ActivateReply):
                    successes += 1
            except (TransportError, DecodeError):
                pass
        seconds = time.monotonic() - started
    finally:
        stop.set()
        await asyncio.wait(holders, timeout=10)
        for h in holders:
            h.cancel()
    return SlotAttackResult(attempts, successes, opened[0], round(seconds, 3))


__all__ = ["SlotAttackResult", "slot_attack"]
