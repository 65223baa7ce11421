"""The host's count: distinct machines seen in the last 30 days, in memory, sans-I/O.

:class:`ClientIndex` is what :class:`~volact.host.policy.HostCore` counts with.
The server loads it from the store at start and the store persists every
record, but nothing here knows about either. No I/O; ``now`` is Unix seconds.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Sequence
from typing import TypeAlias

from volact.errors import CountFull
from volact.wire import DAY

#: A machine leaves the count when it has not been seen for this long (seconds).
COUNT_WINDOW = 30 * DAY


_SLOT_BITS = 24
_SLOT_MASK = (1 << _SLOT_BITS) - 1

#: What :meth:`ClientIndex.touch` changed, to take it back: ``(cmid, last seen
#: before or None for a machine new to the count, whether it was a VM)``. A plain
#: tuple: one is made per request.
Touch: TypeAlias = tuple[bytes, int | None, bool]


class ClientIndex:
    """Distinct machines seen in the last 30 days, in memory: the host's count.

    A dict (CMID → last seen) and a min-heap with exactly one entry per machine.
    A renewal only updates the dict; when the stale heap entry reaches the top it
    is pushed again with the newer time, so the heap never grows past the number
    of machines and expiry costs O(log n) per departing machine. Heap entries are
    plain ints (``time << 24 | slot``, the slot naming the CMID in a list), not
    tuples: a third of the memory, and nothing for the garbage collector to walk,
    which matters with a million machines.

    At most ``capacity`` machines are counted: :meth:`touch` refuses a new one
    past that with :class:`CountFull` *before* changing anything (check
    :meth:`can_add` first to avoid the exception). Machines already counted are
    always renewed.
    """

    __slots__ = ("_free", "_heap", "_last", "_slots", "_vms", "capacity", "window")

    def __init__(self, window: int = COUNT_WINDOW, capacity: int = _SLOT_MASK) -> None:
        self.window = window
        #: the most machines counted at once (24-bit slots name them: no more than 2**24 - 1)
        self.capacity = min(capacity, _SLOT_MASK)
        self._last: dict[bytes, int] = {}
        self._heap: list[int] = []
        self._slots: list[bytes] = []
        self._free: list[int] = []
        self._vms: set[bytes] = set()

    @classmethod
    def from_rows(
        cls, rows: Iterable[tuple[bytes, int, bool]], *, now: int, window: int = COUNT_WINDOW
    ) -> ClientIndex:
        """An index from ``(cmid, last_seen, vm)`` rows, one per machine (the store's clients)."""
        index = cls(window)
        cutoff = now - window
        last, vms = index._last, index._vms
        it = iter(rows)
        # Chunked comprehensions: twice as fast as a loop over a million rows.
        while chunk := list(itertools.islice(it, 10_000)):
            last.update({c: t for c, t, _ in chunk if t > cutoff})
            vms.update(c for c, t, vm in chunk if vm and t > cutoff)
        index._slots = list(last)
        if len(index._slots) > _SLOT_MASK:
            raise CountFull(f"a host counts at most {_SLOT_MASK} machines")
        index._heap = [(t << _SLOT_BITS) | i for i, t in enumerate(last.values())]
        heapq.heapify(index._heap)
        return index

    def can_add(self) -> bool:
        """Whether a machine new to the count can be added (below the capacity, a slot free)."""
        return len(self._last) < self.capacity and (
            bool(self._free) or len(self._slots) <= _SLOT_MASK
        )

    def touch(self, cmid: bytes, now: int, vm: bool) -> Touch:
        """Record that ``cmid`` made an admissible request at ``now``; return how to undo it.

        :class:`CountFull` for a machine new to the count when :meth:`can_add` is
        False; the index is then unchanged.
        """
        old = self._last.get(cmid)
        was_vm = old is not None and cmid in self._vms
        if old is None:
            if not self.can_add():
                raise CountFull(f"the count is full ({len(self._last)} machines)")
            self._push(cmid, now)
            self._last[cmid] = now
        elif now > old:
            self._last[cmid] = now  # the heap entry is refreshed lazily in expire()
        if vm:
            self._vms.add(cmid)
        elif self._vms:
            self._vms.discard(cmid)
        return (cmid, old, was_vm)

    def undo(self, touches: Sequence[Touch]) -> None:
        """Take back ``touches`` (their records never reached the store), newest first.

        A machine new to the count leaves it; its heap entry is dropped when it
        reaches the top. A known machine gets its previous time back, with a heap
        entry of its own at that time: the entry it had may meanwhile have been
        refreshed to the later time. The index stays exact; the heap may hold one
        extra entry per undone touch until that machine leaves the count.
        """
        last, vms = self._last, self._vms
        for cmid, old, was_vm in reversed(touches):
            if old is None:
                if last.pop(cmid, None) is not None:
                    vms.discard(cmid)
                continue
            last[cmid] = old
            # With no slot left (never short of 2**24 entries), the machine keeps
            # only its newer entry and leaves the count late rather than never.
            self._push(cmid, old)
            if was_vm:
                vms.add(cmid)
            else:
                vms.discard(cmid)

    def _push(self, cmid: bytes, time: int) -> bool:
        """A heap entry for ``cmid`` at ``time``; False (and nothing done) with no slot left."""
        if self._free:
            slot = self._free.pop()
            self._slots[slot] = cmid
        else:
            slot = len(self._slots)
            if slot > _SLOT_MASK:
                return False
            self._slots.append(cmid)
        heapq.heappush(self._heap, (time << _SLOT_BITS) | slot)
        return True

    def expire(self, now: int) -> None:
        """Drop machines not seen for the whole window before ``now``."""
        cutoff = now - self.window
        heap, last, slots = self._heap, self._last, self._slots
        limit = (cutoff + 1) << _SLOT_BITS  # entries below this have time <= cutoff
        while heap and heap[0] < limit:
            entry = heapq.heappop(heap)
            slot = entry & _SLOT_MASK
            cmid = slots[slot]
            seen = last.get(cmid)
            if seen is None:  # an undone machine, or a second entry (see undo())
                self._free.append(slot)
            elif seen > entry >> _SLOT_BITS:
                heapq.heappush(heap, (seen << _SLOT_BITS) | slot)
            else:
                del last[cmid]
                self._vms.discard(cmid)
                self._free.append(slot)

    def count(self, now: int, *, count_vms: bool = True) -> int:
        """Distinct machines seen in the window ending at ``now``."""
        self.expire(now)
        n = len(self._last)
        return n if count_vms else n - len(self._vms)

    def last_seen(self, cmid: bytes) -> int | None:
        return self._last.get(cmid)

    def __len__(self) -> int:
        return len(self._last)

    def __contains__(self, cmid: object) -> bool:
        """Whether ``cmid`` is counted (until :meth:`expire` runs, possibly for a stale one)."""
        return cmid in self._last


__all__ = ["COUNT_WINDOW", "ClientIndex", "Touch"]
