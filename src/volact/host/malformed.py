"""Which malformed connections the host logs: at most one event per address per minute.

Sans-I/O: the server reports each connection it closed for bad input with the
time ``now`` (Unix seconds) and gets back the event rows to write.
"""

from __future__ import annotations

from typing import TypeAlias

#: One event row: (time, client address, message).
EventRow: TypeAlias = tuple[int, str, str]


class _Window:
    __slots__ = ("end", "message", "n", "start")

    def __init__(self, start: int, end: int, message: str) -> None:
        self.start = start  #: when the window opened
        self.end = end  #: when it ends
        self.n = 0  #: malformed connections not yet in an event
        self.message = message  #: what was wrong with the last one


class MalformedLog:
    """Which malformed connections become ``malformed`` events: at most one per address per minute.

    Garbage traffic must not grow the event log without bound. The first malformed
    connection from an address is logged at once; the ones that follow within the
    minute are only counted, and when the minute ends one event stands for all of
    them and opens the next minute; a minute without any closes the address's
    window. Every message starts with the number of connections it stands for.
    The caller keeps the running totals (every connection counts there).

    At most ``max_addresses`` windows are open: past that, the oldest is closed
    early (its summary written), so memory stays bounded whatever the number of
    source addresses, at the price of a second event within the minute for them.
    Sans-I/O: ``now`` is Unix seconds.
    """

    __slots__ = ("_open", "max_addresses", "window")

    def __init__(self, window: int = 60, max_addresses: int = 10_000) -> None:
        self.window = window
        self.max_addresses = max_addresses
        #: open windows by address, in order of their end (a window that goes on
        #: is moved to the back)
        self._open: dict[str, _Window] = {}

    def add(self, now: int, address: str, message: str) -> list[EventRow]:
        """One malformed connection from ``address``: the event rows to write now."""
        rows = self.due(now)
        w = self._open.get(address)
        if w is not None:
            w.n += 1
            w.message = message
            return rows
        if len(self._open) >= self.max_addresses:
            rows.extend(self._close(now, next(iter(self._open))))
        self._open[address] = _Window(now, now + self.window, message)
        rows.append((now, address, f"1 connection: {message}"))
        return rows

    def due(self, now: int) -> list[EventRow]:
        """The summaries of windows that ended at or before ``now``."""
        rows: list[EventRow] = []
        while self._open:
            address, w = next(iter(self._open.items()))
            if w.end > now:
                break
            rows.extend(self._close(now, address))
            if w.n:
                # Traffic went on during the minute: its summary opens the next one.
                self._open[address] = _Window(now, now + self.window, w.message)
        return rows

    def drain(self, now: int) -> list[EventRow]:
        """The summaries of every open window (the host is stopping)."""
        rows: list[EventRow] = []
        for address in list(self._open):
            rows.extend(self._close(now, address))
        return rows

    def _close(self, now: int, address: str) -> list[EventRow]:
        w = self._open.pop(address)
        if not w.n:
            return []
        what = f"{w.n} connection{'s' if w.n > 1 else ''}"
        return [(now, address, f"{what} in {now - w.start} s, the last: {w.message}")]

    def __len__(self) -> int:
        return len(self._open)


__all__ = ["EventRow", "MalformedLog"]
