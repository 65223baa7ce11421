"""The host's count: distinct machines seen in the last 30 days, in memory, sans-I/O.

:class:`ClientIndex` is what :class:`~volact.host.policy.HostCore` counts with.
The server loads it from the store at start and the store persists every
record, but nothing here knows about either. No I/O; ``now`` is Unix seconds.
"""

from __future__ import annotations

import heapq
import operator
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from typing import TypeAlias

from volact.errors import CountFull
from volact.wire import DAY

#: A machine leaves the count when it has not been seen for this long (seconds).
COUNT_WINDOW = 30 * DAY


_SLOT_BITS = 24
_SLOT_MASK = (1 << _SLOT_BITS) - 1
# A heap entry is ``(2 * time + flag) << 24 | slot``, that is ``time << 25 | flag <<
# 24 | slot``: the flag bit is a loaded machine's VM flag (see ClientColumns.seen),
# which lets the loaded values become heap entries with a single C-level OR each.
_TIME_SHIFT = _SLOT_BITS + 1
_CMID = 16  # bytes: a CMID is a UUID; only these can sit in the loaded arrays
_LOW_BYTE = 0 if sys.byteorder == "little" else 7  # of an int64 in memory
_LOW_BIT = bytes(b & 1 for b in range(256))
_STEPS = 32  # the loaded machines' heap entries are made in this many steps a window
_DONE = 2**63 - 1  # in _base_todo: this position has its heap entry

#: What :meth:`ClientIndex.touch` changed, to take it back: ``(cmid, last seen
#: before or None for a machine new to the count, whether it was a VM)``. A plain
#: tuple: one is made per request.
Touch: TypeAlias = tuple[bytes, int | None, bool]


@dataclass(frozen=True, slots=True)
class ClientColumns:
    """The store's recent clients column by column: a million rows, a handful of objects.

    What :meth:`ClientIndex.from_columns` loads; ``cmids[16 * i : 16 * i + 16]``
    and ``seen[i]`` are one machine.
    """

    cmids: bytes  #: the CMIDs, 16 bytes each, in strictly ascending byte order
    #: per machine, ``2 * last_seen + vm``: Unix seconds of its last request, and 1
    #: if it said it is a virtual machine (else 0)
    seen: Sequence[int]


class ClientIndex:
    """Distinct machines seen in the last 30 days, in memory: the host's count.

    Two homes for a machine, and a min-heap of expiry entries:

    * A dict (CMID → last seen) and a set of VMs: every machine touched since the
      index was made. :meth:`touch` on a machine already there (a renewal, the hot
      path) is two dict operations.
    * Machines loaded by :meth:`from_columns` and not touched since stay in flat
      arrays sorted by CMID (the halves of each CMID as 64-bit numbers, the last
      seen time with the VM flag, a byte saying whether it still counts): 25 bytes
      a machine (33 until all their heap entries are made) instead of about 170 in
      the dict, and no Python object per machine to build at start-up. A machine
      found there by binary search on its first touch moves to the dict.

    Heap entries are plain ints ``time << 25 | flag << 24 | slot``: the top slots,
    one per loaded machine, name its array position (the very last is a sentinel,
    see :meth:`_add_base_entries`), the others a CMID in a list. A renewal only
    updates the dict; when the stale entry reaches the top it is pushed again with
    the newer time, so the heap never holds more than one entry per machine (plus
    the sentinel, and one per undone touch) and expiry costs O(log n) per departing
    machine. Ints, not tuples: a third of the memory, and nothing for the garbage
    collector to walk.

    At most ``capacity`` machines are counted: :meth:`touch` refuses a new one
    past that with :class:`CountFull` *before* changing anything (check
    :meth:`can_add` first to avoid the exception). Machines already counted are
    always renewed.
    """

    __slots__ = (
        "_base_entries", "_base_hi", "_base_live", "_base_lo", "_base_pending", "_base_seen",
        "_base_start", "_base_state", "_base_step", "_base_todo", "_base_vms", "_free",
        "_heap", "_last", "_slots", "_vms", "capacity", "window",
    )  # fmt: skip

    def __init__(self, window: int = COUNT_WINDOW, capacity: int = _SLOT_MASK) -> None:
        self.window = window
        #: the most machines counted at once (24-bit slots name them: no more than 2**24 - 1)
        self.capacity = min(capacity, _SLOT_MASK)
        self._last: dict[bytes, int] = {}
        self._heap: list[int] = []
        self._slots: list[bytes] = []  # the CMID of each slot below _base_start
        self._free: list[int] = []
        self._vms: set[bytes] = set()
        # The loaded machines (see the class docstring); position i is one machine.
        self._base_start = _SLOT_MASK + 1  # slot of position 0: the top slots are theirs
        self._base_hi: array[int] = array("Q")  # first 8 bytes of the CMID, big-endian
        self._base_lo: array[int] = array("Q")  # last 8 bytes
        self._base_seen: array[int] = array("q")  # 2 * last seen + VM flag
        self._base_state = bytearray()  # 1 while counted here (not touched, not expired)
        self._base_live = 0  # positions counted here: in the count, not in the dict
        self._base_vms = 0  # of which VMs
        self._base_entries = 0  # positions not yet out of the heap; the arrays go at 0
        self._base_pending = 0  # positions without a heap entry yet
        self._base_todo: array[int] = array("q")  # _base_seen, or _DONE once in the heap
        self._base_step = 1  # seconds: see _add_base_entries()

    @classmethod
    def from_rows(
        cls, rows: Iterable[tuple[bytes, int, bool]], *, now: int, window: int = COUNT_WINDOW
    ) -> ClientIndex:
        """An index from ``(cmid, last_seen, vm)`` rows, one per machine (the store's clients)."""
        cutoff = now - window
        latest = {c: 2 * t + bool(vm) for c, t, vm in rows if t > cutoff}
        cmids = sorted(c for c in latest if len(c) == _CMID)
        columns = ClientColumns(b"".join(cmids), [latest[c] for c in cmids])
        index = cls.from_columns(columns, now=now, window=window)
        for c, seen in latest.items():
            if len(c) != _CMID:  # not from the wire, but counted all the same
                if not index._push(c, seen >> 1):
                    raise CountFull(f"a host counts at most {_SLOT_MASK} machines")
                index._last[c] = seen >> 1
                if seen & 1:
                    index._vms.add(c)
        return index

    @classmethod
    def from_columns(
        cls, columns: ClientColumns, *, now: int, window: int = COUNT_WINDOW
    ) -> ClientIndex:
        """An index from the store's clients as columns (see :class:`ClientColumns`).

        Builds no Python object per machine but its heap entry, all in C.
        ValueError when the columns do not match or the CMIDs are not in strictly
        ascending order (the binary search depends on it).
        """
        seen = columns.seen
        n = len(seen)
        if len(columns.cmids) != _CMID * n:
            raise ValueError(f"{len(columns.cmids)} bytes of CMIDs for {n} machines")
        if n >= _SLOT_MASK:
            raise CountFull(f"a host counts at most {_SLOT_MASK - 1} machines loaded")
        index = cls(window)
        words = array("Q", columns.cmids)
        if sys.byteorder == "little":
            words.byteswap()  # big-endian numbers order like the bytes
        hi, lo = words[0::2], words[1::2]
        del words
        if not _ascending(hi, lo):
            raise ValueError("client CMIDs are not in strictly ascending order")
        try:
            index._base_seen = array("q", seen)
        except (TypeError, OverflowError):
            raise ValueError("a client's last seen time is not a 64-bit integer") from None
        index._base_hi, index._base_lo = hi, lo
        index._base_state = bytearray(b"\1") * n
        index._base_live = index._base_entries = n
        index._base_start = _SLOT_MASK - n  # the last slot is the sentinel's
        # The VM flags are the low bits of the low bytes.
        low = memoryview(index._base_seen).cast("B")[_LOW_BYTE :: index._base_seen.itemsize]
        index._base_vms = low.tobytes().translate(_LOW_BIT).count(1)
        if n:
            index._base_pending = n
            index._base_todo = array("q", index._base_seen)
            index._base_step = max(1, window // _STEPS)
            index._add_base_entries(now - window)
        index.expire(now)  # rows seen before the window, if the caller passed any
        return index

    def can_add(self) -> bool:
        """Whether a machine new to the count can be added (below the capacity, a slot free)."""
        return len(self._last) + self._base_live < self.capacity and (
            bool(self._free) or len(self._slots) < self._base_start
        )

    def touch(self, cmid: bytes, now: int, vm: bool) -> Touch:
        """Record that ``cmid`` made an admissible request at ``now``; return how to undo it.

        :class:`CountFull` for a machine new to the count when :meth:`can_add` is
        False; the index is then unchanged.
        """
        old = self._last.get(cmid)
        was_vm = old is not None and cmid in self._vms
        if old is None:
            if self._base_live and (i := self._find(cmid)) >= 0:
                # First touch of a loaded machine: it moves to the dict. Its heap
                # entry (its position) stays and is refreshed lazily in expire().
                old, was_vm = self._leave_base(i)
                self._last[cmid] = now if now > old else old
            else:
                if not self.can_add():
                    raise CountFull(f"the count is full ({len(self)} machines)")
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
        reaches the top. A known machine gets its previous time back, in the dict
        (a loaded machine does not go back to the arrays), with a heap entry of its
        own at that time: the entry it had may meanwhile have been refreshed to the
        later time. The index stays exact; the heap may hold one extra entry per
        undone touch until that machine leaves the count.
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
            if slot >= self._base_start:
                return False
            self._slots.append(cmid)
        heapq.heappush(self._heap, (time << _TIME_SHIFT) | slot)
        return True

    def expire(self, now: int) -> None:
        """Drop machines not seen for the whole window before ``now``."""
        cutoff = now - self.window
        heap, last, slots, start = self._heap, self._last, self._slots, self._base_start
        limit = (cutoff + 1) << _TIME_SHIFT  # entries below this have time <= cutoff
        while heap and heap[0] < limit:
            entry = heapq.heappop(heap)
            slot = entry & _SLOT_MASK
            if slot >= start:
                if slot == _SLOT_MASK:  # the sentinel: the next loaded machines' entries
                    self._add_base_entries(cutoff)
                    continue
                if self._base_state[slot - start]:  # loaded, not touched since: it leaves
                    self._leave_base(slot - start)
                    self._base_entry_done()
                    continue
                cmid = self._base_cmid(slot - start)
            else:
                cmid = slots[slot]
            seen = last.get(cmid)
            if seen is not None and seen > entry >> _TIME_SHIFT:
                heapq.heappush(heap, (seen << _TIME_SHIFT) | slot)
                continue
            if seen is not None:
                del last[cmid]
                self._vms.discard(cmid)
            # else an undone machine, or a second entry (see undo()): the slot is free
            if slot >= start:
                self._base_entry_done()
            else:
                self._free.append(slot)

    def count(self, now: int, *, count_vms: bool = True) -> int:
        """Distinct machines seen in the window ending at ``now``."""
        self.expire(now)
        n = len(self._last) + self._base_live
        return n if count_vms else n - len(self._vms) - self._base_vms

    def last_seen(self, cmid: bytes) -> int | None:
        seen = self._last.get(cmid)
        if seen is None and self._base_live and (i := self._find(cmid)) >= 0:
            return self._base_seen[i] >> 1
        return seen

    def __len__(self) -> int:
        return len(self._last) + self._base_live

    def __contains__(self, cmid: object) -> bool:
        """Whether ``cmid`` is counted (until :meth:`expire` runs, possibly for a stale one)."""
        if cmid in self._last:
            return True
        return bool(self._base_live) and isinstance(cmid, bytes) and self._find(cmid) >= 0

    # -- the loaded arrays -----------------------------------------------------

    def _find(self, cmid: bytes) -> int:
        """The position of ``cmid`` if it is loaded and counted there, else -1."""
        if len(cmid) != _CMID:
            return -1
        his, hi = self._base_hi, int.from_bytes(cmid[:8], "big")
        i = bisect_left(his, hi)
        if i == len(his) or his[i] != hi:
            return -1
        lo = int.from_bytes(cmid[8:], "big")
        j = i + 1
        if j < len(his) and his[j] == hi:  # CMIDs sharing their first 8 bytes
            i = bisect_left(self._base_lo, lo, i, bisect_right(his, hi, j))
            if i == len(his):
                return -1
        return i if self._base_lo[i] == lo and his[i] == hi and self._base_state[i] else -1

    def _base_cmid(self, i: int) -> bytes:
        return ((self._base_hi[i] << 64) | self._base_lo[i]).to_bytes(_CMID, "big")

    def _leave_base(self, i: int) -> tuple[int, bool]:
        """Take position ``i`` out of the arrays' count; its last seen time and VM flag."""
        seen = self._base_seen[i]
        self._base_state[i] = 0
        self._base_live -= 1
        self._base_vms -= seen & 1
        return seen >> 1, bool(seen & 1)

    def _add_base_entries(self, cutoff: int) -> None:
        """Heap entries for the loaded machines last seen up to a step past ``cutoff``.

        The loaded positions are in CMID order, not time order, and a heap entry
        for each at start-up would cost a third of the start-up: they get theirs
        a step (1/32 of the window) at a time, in one C-level pass over the
        times, when the sentinel entry at the end of the last step comes out of
        the heap. The sentinel stays below every position not yet in the heap.
        """
        upto = cutoff + self._base_step
        todo, seen, start, heap = self._base_todo, self._base_seen, self._base_start, self._heap
        new = []
        for i in compress(range(len(todo)), map(operator.lt, todo, repeat(2 * upto + 2))):
            todo[i] = _DONE
            new.append((seen[i] << _SLOT_BITS) | (start + i))
        if len(new) * 8 > len(heap):
            heap += new
            heapq.heapify(heap)
        else:
            for entry in new:
                heapq.heappush(heap, entry)
        self._base_pending -= len(new)
        if self._base_pending:
            heapq.heappush(heap, ((upto + 1) << _TIME_SHIFT) | _SLOT_MASK)
        else:
            self._base_todo = array("q")

    def _base_entry_done(self) -> None:
        """One heap entry fewer names a position; with none left, free the arrays."""
        self._base_entries -= 1
        if not self._base_entries:
            # _base_start stays: those slots are never handed out again.
            self._base_hi, self._base_lo = array("Q"), array("Q")
            self._base_seen, self._base_state = array("q"), bytearray()


def _ascending(hi: array[int], lo: array[int]) -> bool:
    """Whether the CMIDs whose halves are ``hi`` and ``lo`` are strictly ascending (in C)."""
    hi_next = hi[1:]
    if all(map(operator.lt, hi, hi_next)):
        return True  # random CMIDs: the first halves already differ
    if not all(map(operator.le, hi, hi_next)):
        return False
    if hi[0] == hi[-1]:
        return all(map(operator.lt, lo, lo[1:]))  # one first half (numbered CMIDs)
    return all(map(operator.or_, map(operator.ne, hi, hi_next), map(operator.lt, lo, lo[1:])))


__all__ = ["COUNT_WINDOW", "ClientColumns", "ClientIndex", "Touch"]
