"""The host's durable store: SQLite in WAL mode in the host's home.

Tables: ``clients`` (one row per machine ever seen: CMID, SKU, workstation,
address, VM flag, first and last contact, last result, valid-until), ``events``
(every request and every host event such as DNS publishing), and two running
totals kept with each batch so that status and reports stay fast with a million
clients (``result_totals``, ``daily``). The schema is versioned
(``PRAGMA user_version``) and migrated forward on open.

This is a thin adapter: it writes what :mod:`volact.host.policy` decided and
answers queries; it makes no decision. ``sqlite3`` errors become
:class:`~volact.errors.StoreError`. A serving host holds an exclusive lock on
``serve.lock`` so that a second host on the same home is refused clearly.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

from volact.errors import StoreError
from volact.files import LockHeld, release_lock, take_lock
from volact.host.client_index import ClientColumns
from volact.host.config import LOCK_FILE, STORE_FILE
from volact.host.policy import NOT_COUNTED, RequestRecord
from volact.wire import LicenseState, Result

_OK = int(Result.OK)
_LICENSED = int(LicenseState.LICENSED)  # an OK result for a licensed client is a renewal

SCHEMA_VERSION = 2
DAY = 86_400

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE clients (
        cmid BLOB PRIMARY KEY,
        sku BLOB NOT NULL,
        workstation TEXT NOT NULL,
        address TEXT NOT NULL,
        vm INTEGER NOT NULL,
        first_contact INTEGER NOT NULL,
        last_contact INTEGER NOT NULL,
        last_result INTEGER NOT NULL,
        valid_until INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,
        kind TEXT NOT NULL,
        address TEXT,
        workstation TEXT,
        cmid BLOB,
        sku BLOB,
        vm INTEGER,
        state INTEGER,
        minutes_left INTEGER,
        client_time INTEGER,
        result INTEGER,
        count INTEGER,
        message TEXT
    );
    CREATE TABLE result_totals (result TEXT PRIMARY KEY, n INTEGER NOT NULL);
    CREATE TABLE daily (
        day INTEGER NOT NULL,
        sku BLOB NOT NULL,
        kind TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (day, sku, kind)
    ) WITHOUT ROWID;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # Rebalance: when the client's latest grant asked it to move (0: it did not).
    2: """
    ALTER TABLE clients ADD COLUMN told_at INTEGER NOT NULL DEFAULT 0;
    """,
}

# Parameters: cmid, sku, workstation, address, vm, time, result, valid_until, moved
# (numbered: one tuple per record, taken from it by _CLIENT_ROW without Python code).
_UPSERT_CLIENT = """
INSERT INTO clients (cmid, sku, workstation, address, vm, first_contact, last_contact,
                     last_result, valid_until, told_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, CASE WHEN ?9 THEN ?6 ELSE 0 END)
ON CONFLICT (cmid) DO UPDATE SET
    sku = excluded.sku,
    workstation = excluded.workstation,
    address = excluded.address,
    vm = excluded.vm,
    last_contact = max(last_contact, excluded.last_contact),
    last_result = excluded.last_result,
    valid_until = CASE WHEN excluded.valid_until > 0 THEN excluded.valid_until
                       ELSE valid_until END,
    told_at = CASE WHEN excluded.last_result = 0 THEN excluded.told_at ELSE told_at END
"""
_INSERT_MOVE = """
INSERT INTO events (time, kind, address, workstation, cmid, sku, vm, state, result, count,
                    message)
VALUES (?, 'move_told', ?, ?, ?, ?, ?, ?, ?, ?, 'granted and asked to move to another host')
"""
_INSERT_REQUEST = """
INSERT INTO events (time, kind, address, workstation, cmid, sku, vm, state, minutes_left,
                    client_time, result, count)
VALUES (?, 'request', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# A record's parameters for each statement, as plain tuples (what sqlite3 binds
# fastest), cut out of the RequestRecord in C: no Python code runs per record.
_F = RequestRecord._fields
_EVENT_ROW = itemgetter(*(_F.index(f) for f in (
    "time", "address", "workstation", "cmid", "sku", "vm", "state", "minutes_left",
    "client_time", "result", "host_count",
)))  # fmt: skip
_CLIENT_ROW = itemgetter(*(_F.index(f) for f in (
    "cmid", "sku", "workstation", "address", "vm", "time", "result", "valid_until", "moved",
)))  # fmt: skip
_RESULT = itemgetter(_F.index("result"))
_MOVED = itemgetter(_F.index("moved"))
del _F

#: ``daily`` rows of replies other than OK have this kind prefix and the result's label
#: (``refused:count_too_low``): the Activity report shows refusals per day and product.
REFUSED = "refused:"


def _daily_kind(result: int, renewal: bool) -> str:
    if result == _OK:
        return "renewal" if renewal else "activation"
    return REFUSED + Result(result).label


# The clients seen lately, each column aggregated into one value: the CMIDs
# concatenated, and ``2 * last_contact + vm`` as a JSON array (null for a CMID that
# is not 16 bytes). The aggregates of one scan see the rows in the same order, and
# the scan must be in CMID order (ClientIndex.from_columns checks it): INDEXED BY
# names the primary key's b-tree, which a WITHOUT ROWID table *is* (NOT INDEXED
# would still take a covering index on last_contact, if one is ever added). Should
# SQLite ever name that index otherwise, the ordered subquery (a third slower).
_CLIENT_COLUMNS = """
SELECT CAST(group_concat(cmid, '') AS BLOB),
       json_group_array(CASE length(cmid) WHEN 16 THEN last_contact * 2 + (vm != 0) END)
FROM {}
"""
_CLIENTS_BY_CMID = (
    "clients INDEXED BY sqlite_autoindex_clients_1 WHERE last_contact > ?",
    "(SELECT cmid, last_contact, vm FROM clients WHERE last_contact > ? ORDER BY cmid)",
)


# ValiditySummary's counts in one scan of the clients; {} takes more columns.
# Parameters: now, the expiry warning time, the start of the counting window.
_VALIDITY = (
    "SELECT count(*), sum(valid_until > ?1), sum(valid_until > ?1 AND valid_until <= ?2), "
    "sum(valid_until > 0 AND valid_until <= ?1), sum(valid_until = 0), "
    "sum(last_contact > ?3){} FROM clients"
)
# The whole days left of every client still valid, as one JSON array.
_DAYS_LEFT = f", json_group_array((valid_until - ?1) / {DAY}) FILTER (WHERE valid_until > ?1)"


@dataclass(frozen=True)
class Event:
    """One row of the event log."""

    time: int  #: Unix seconds
    kind: str  #: ``request``, ``malformed``, ``dns_publish_ok``, ``serve_start``, ...
    address: str | None  #: client address, for requests
    workstation: str | None  #: client name, for requests
    cmid: bytes | None  #: client machine id, for requests
    sku: bytes | None  #: SKU id, for requests
    vm: bool | None  #: VM flag, for requests
    state: int | None  #: client license state, for requests
    result: int | None  #: result code, for requests
    count: int | None  #: host count in the reply, for requests
    message: str | None  #: free text, for host events
    id: int = 0  #: position in the log (``before=`` pages back from it)


@dataclass(frozen=True)
class ClientRow:
    """One known client, as the licensing report lists it."""

    cmid: bytes  #: client machine id
    sku: bytes  #: SKU id of its last request
    workstation: str  #: the name it sent (from the network: escape before printing)
    address: str  #: the address it last came from
    vm: int  #: 1 if it said it is a virtual machine
    last_contact: int  #: Unix seconds of its last request
    valid_until: int  #: Unix seconds its activation lasts until; 0 if never activated
    last_result: int  #: result code of its last request


@dataclass(frozen=True)
class ValiditySummary:
    """Counts over all known clients (one scan of the store)."""

    known: int  #: clients the store knows
    licensed: int  #: still valid
    expiring: int  #: valid, but expiring before the warning time
    expired: int  #: once activated, now expired
    never: int  #: never activated
    counted: int  #: seen within the counting window


class HostStore:
    """One connection to a host's SQLite store."""

    def __init__(self, conn: sqlite3.Connection, path: Path, lock_fd: int | None) -> None:
        self._conn = conn
        self.path = path
        self._lock_fd = lock_fd

    @classmethod
    def open(
        cls,
        home: Path,
        *,
        exclusive: bool = False,
        create: bool = True,
        store_dir: Path | None = None,
    ) -> HostStore:
        """Open (and migrate) the store in ``home``.

        ``exclusive`` takes the serving lock: a second serving host on the same home
        gets a :class:`StoreError` naming the holder's pid. ``store_dir`` puts the
        database elsewhere (a bench-mode host's scratch store) while the lock stays
        in ``home``.
        """
        path = (store_dir or home) / STORE_FILE
        if not create and not path.exists():
            raise StoreError(f"no store at {path}: is {home} a host home?")
        if not create and not exclusive and not (
            os.access(path, os.W_OK) and os.access(home, os.W_OK)
        ):
            # A member of the monitoring group (docs/operations.md § File modes).
            return cls._open_readonly(home, path)
        lock_fd = _lock(home) if exclusive else None
        try:
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
        except sqlite3.Error as exc:
            release_lock(lock_fd)
            raise StoreError(f"cannot open the store {path}: {exc}") from exc
        store = cls(conn, path, lock_fd)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed grant survives a power cut, not just a crash.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            store._migrate()
        except StoreError:
            store.close()
            raise
        except sqlite3.Error as exc:
            store.close()
            raise StoreError(
                f"the store {path} is corrupt or not a volact store ({exc}); "
                "restore it from a backup or move it aside"
            ) from exc
        return store

    @classmethod
    def _open_readonly(cls, home: Path, path: Path) -> HostStore:
        """The store for a reader who may not write the home (reports, status, alerts).

        While a host serves, its ``-wal`` and ``-shm`` files exist and SQLite reads
        through them read-only. When no host runs they are gone and a reader cannot
        create them; the database file is then complete (checkpointed on close) and
        is read as immutable.
        """
        wal = path.with_name(path.name + "-wal")
        uri = path.resolve().as_uri()
        try:
            conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False)
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as exc:
            if wal.exists():
                raise StoreError(f"cannot read the store {path}: {exc}") from exc
            try:
                conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            except sqlite3.Error as exc2:
                raise StoreError(
                    f"cannot read the store {path}: {exc2} (are you in the host's "
                    "monitoring group? see docs/operations.md § File modes)"
                ) from exc2
        if version != SCHEMA_VERSION:
            conn.close()
            raise StoreError(
                f"the store {path} has schema version {version}, this volact reads "
                f"{SCHEMA_VERSION}: run a command as the host's owner to upgrade it"
            )
        return cls(conn, path, None)

    def reader(self) -> HostStore:
        """A second, read-only connection to this store: for a scan in another thread
        while this one keeps writing (WAL readers never block the writer)."""
        return HostStore._open_readonly(self.path.parent, self.path)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        release_lock(self._lock_fd)
        self._lock_fd = None

    def __enter__(self) -> HostStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ----------------------------------------------------------------

    def _migrate(self) -> None:
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store has schema version {version}, newer than this volact "
                f"({SCHEMA_VERSION}): upgrade volact"
            )
        while version < SCHEMA_VERSION:
            version += 1
            with self._tx():
                for stmt in _MIGRATIONS[version].split(";"):
                    if stmt.strip():
                        self._conn.execute(stmt)
                self._conn.execute(f"PRAGMA user_version={version}")
                if version == 1:
                    self._conn.execute(
                        "INSERT OR IGNORE INTO meta VALUES ('installed_at', strftime('%s','now'))"
                    )

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._begin()
        try:
            yield self._conn
        except BaseException:
            self.rollback()
            raise
        else:
            self.commit()

    def _begin(self) -> None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"the store is busy or locked: {exc}") from exc
        except sqlite3.Error as exc:  # closed, misused, corrupt ...
            raise StoreError(f"cannot write to the store {self.path}: {exc}") from exc

    # -- writes ----------------------------------------------------------------

    def add_event(self, now: int, kind: str, message: str) -> None:
        """Record a host event (DNS publishing, start, stop ...)."""
        self.write_batch((), [(now, kind, message)])

    def write_batch(
        self,
        records: Sequence[RequestRecord],
        events: Iterable[tuple[int, str, str]] = (),
        malformed: Iterable[tuple[int, str, str]] = (),
        *,
        malformed_count: int | None = None,
    ) -> None:
        """Persist many requests and events in one transaction (group commit).

        ``malformed`` are ``(time, address, message)`` event rows; the running total
        of malformed connections grows by ``malformed_count`` (default: one per row:
        a server logs fewer rows than connections).
        """
        self.stage(records, events, malformed, malformed_count=malformed_count)
        self.commit()

    def stage(
        self,
        records: Sequence[RequestRecord],
        events: Iterable[tuple[int, str, str]] = (),
        malformed: Iterable[tuple[int, str, str]] = (),
        *,
        malformed_count: int | None = None,
    ) -> None:
        """Begin a transaction and write a batch into it; :meth:`commit` makes it durable.

        Split so that a server can do the CPU work on its own thread and leave only
        the commit (the disk wait) to another. On any error the transaction is
        rolled back (the connection stays usable) and ``sqlite3`` errors become
        :class:`StoreError`.
        """
        self._begin()
        try:
            rows = list(malformed)
            n = len(rows) if malformed_count is None else malformed_count
            self._stage(records, list(events), rows, n)
        except sqlite3.Error as exc:
            self.rollback()
            raise StoreError(f"cannot write to the store {self.path}: {exc}") from exc
        except BaseException:
            self.rollback()
            raise

    def commit(self) -> None:
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self.rollback()
            raise StoreError(f"cannot commit to the store {self.path}: {exc}") from exc

    def rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")

    def _stage(
        self,
        records: Sequence[RequestRecord],
        events: list[tuple[int, str, str]],
        malformed: list[tuple[int, str, str]],
        malformed_count: int,
    ) -> None:
        c = self._conn
        if records:
            c.executemany(_INSERT_REQUEST, map(_EVENT_ROW, records))
            totals = Counter(map(_RESULT, records))
            counted = records
            if not NOT_COUNTED.isdisjoint(totals):
                counted = [r for r in records if r.result not in NOT_COUNTED]
            c.executemany(_UPSERT_CLIENT, map(_CLIENT_ROW, counted))
            if any(map(_MOVED, records)):
                c.executemany(
                    _INSERT_MOVE,
                    [
                        (r.time, r.address, r.workstation, r.cmid, r.sku, r.vm, r.state,
                         r.result, r.host_count)
                        for r in records
                        if r.moved
                    ],
                )  # fmt: skip
            # Counted by result and state; the kind's label is made once per group.
            daily = Counter((r.time // DAY, r.sku, r.result, r.state == _LICENSED) for r in records)
            c.executemany(
                "INSERT INTO result_totals VALUES (?, ?) "
                "ON CONFLICT (result) DO UPDATE SET n = n + excluded.n",
                [(Result(k).label, n) for k, n in totals.items()],
            )
            c.executemany(
                "INSERT INTO daily VALUES (?, ?, ?, ?) "
                "ON CONFLICT (day, sku, kind) DO UPDATE SET n = n + excluded.n",
                [(d, s, _daily_kind(res, renewal), n) for (d, s, res, renewal), n in daily.items()],
            )
        if malformed:
            c.executemany(
                "INSERT INTO events (time, kind, address, message) VALUES (?, 'malformed', ?, ?)",
                malformed,
            )
        if malformed_count:
            c.execute(
                "INSERT INTO result_totals VALUES ('malformed', ?) "
                "ON CONFLICT (result) DO UPDATE SET n = n + excluded.n",
                (malformed_count,),
            )
        if events:
            c.executemany("INSERT INTO events (time, kind, message) VALUES (?, ?, ?)", events)

    # -- reads -----------------------------------------------------------------

    def recent_clients(self, since: int) -> Iterator[tuple[bytes, int, bool]]:
        """``(cmid, last_contact, vm)`` of clients seen after ``since`` (to rebuild the count).

        Streamed, so that a million rows never sit in one list.
        """
        try:
            cur = self._conn.execute(
                "SELECT cmid, last_contact, vm FROM clients WHERE last_contact > ?", (since,)
            )
            while rows := cur.fetchmany(10_000):
                yield from rows
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store {self.path}: {exc}") from exc

    def clients_to_count(self, since: int) -> ClientColumns | Iterator[tuple[bytes, int, bool]]:
        """The clients seen after ``since``, to build the count: as columns, else as rows."""
        columns = self.recent_client_columns(since)
        return self.recent_clients(since) if columns is None else columns

    def recent_client_columns(self, since: int) -> ClientColumns | None:
        """The clients seen after ``since`` as columns in CMID order: the count at start-up.

        One query whose aggregates return each column as one value, so that a
        million clients make a handful of Python objects rather than four million.
        None when a CMID is not 16 bytes (a host never writes one): then read
        :meth:`recent_clients`.
        """
        for source in _CLIENTS_BY_CMID:
            try:
                row = self._conn.execute(_CLIENT_COLUMNS.format(source), (since,)).fetchone()
            except sqlite3.Error as exc:
                if "no such index" in str(exc) and source != _CLIENTS_BY_CMID[-1]:
                    continue
                raise StoreError(f"cannot read the store {self.path}: {exc}") from exc
            break
        cmids, seen = row[0] or b"", json.loads(row[1])
        if len(cmids) != 16 * len(seen) or None in seen:
            return None
        return ClientColumns(cmids, seen)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run a read-only query; errors become StoreError. SQL stays in this module."""
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store {self.path}: {exc}") from exc

    def count_since(self, since: int, *, count_vms: bool) -> tuple[int, int]:
        """(machines seen after ``since`` under the VM policy, all known machines): one scan."""
        vm = "" if count_vms else " AND vm = 0"
        row = self._read(f"SELECT sum(last_contact > ?{vm}), count(*) FROM clients", (since,))[0]
        return int(row[0] or 0), int(row[1])

    def result_totals(self) -> dict[str, int]:
        return {str(k): int(n) for k, n in self._read("SELECT result, n FROM result_totals")}

    def installed_at(self) -> int | None:
        rows = self._read("SELECT value FROM meta WHERE key = 'installed_at'")
        return int(rows[0][0]) if rows else None

    def events(
        self,
        *,
        since: int | None = None,
        limit: int = 100,
        before: int | None = None,
        cmid: bytes | None = None,
        workstation: str | None = None,
        result: int | None = None,
    ) -> list[Event]:
        """The newest ``limit`` events (at or after ``since`` if given), oldest first.

        ``before`` (an event id) pages back; ``cmid``, ``workstation`` (a substring,
        case-insensitive) and ``result`` keep only the requests that match.
        """
        first = 0 if since is None else self._first_event_at(since)
        where: list[str] = ["id >= ?"]
        params: list[object] = [first]
        if before is not None:
            where.append("id < ?")
            params.append(before)
        if cmid is not None:
            where.append("cmid = ?")
            params.append(cmid)
        if workstation is not None:
            where.append("instr(lower(workstation), lower(?)) > 0")
            params.append(workstation)
        if result is not None:
            where.append("kind = 'request' AND result = ?")
            params.append(result)
        rows = self._read(
            "SELECT time, kind, address, workstation, cmid, sku, vm, state, result, count, "
            f"message, id FROM events WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [
            Event(r[0], r[1], r[2], r[3], r[4], r[5], None if r[6] is None else bool(r[6]),
                  r[7], r[8], r[9], r[10], r[11])
            for r in reversed(rows)
            if since is None or r[0] >= since
        ]  # fmt: skip

    def _first_event_at(self, since: int) -> int:
        """The id of the first event at or after ``since``, by bisection over ids.

        Events are appended in time order, so ids and times rise together; bisection
        needs no index on time (one less index to update on every request).
        """
        lo_hi = self._read("SELECT min(id), max(id) FROM events")[0]
        if lo_hi[0] is None:
            return 0
        lo, hi = int(lo_hi[0]), int(lo_hi[1]) + 1
        while lo < hi:
            mid = (lo + hi) // 2
            row = self._read("SELECT time FROM events WHERE id >= ? ORDER BY id LIMIT 1", (mid,))
            if row and int(row[0][0]) < since:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def rebalance_figures(
        self, *, since: int, active_since: int, left_before: int
    ) -> tuple[int, int, int]:
        """``(told, active, left)`` for a rebalance that began at ``since``.

        ``told``: clients whose latest grant (at or after ``since``) asked them to
        move; ``active``: clients seen after ``active_since``; ``left``: active
        clients whose last contact was a grant that asked them to move (under this
        rebalance or an earlier one) and who have not come back since
        ``left_before`` (a client that cannot move comes back sooner). One scan.
        """
        row = self._read(
            "SELECT sum(told_at > 0 AND told_at >= ?), sum(last_contact > ?), "
            "sum(told_at > 0 AND told_at = last_contact AND last_contact > ? "
            "AND last_contact <= ?) FROM clients",
            (since, active_since, active_since, left_before),
        )[0]
        return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)

    def quick_check(self) -> str:
        """SQLite's ``quick_check`` of the store: ``ok``, or what is damaged."""
        try:
            rows = self._conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.Error as exc:
            return str(exc)
        return "; ".join(str(r[0]) for r in rows[:5])

    def skus_seen_since(self, since: int) -> list[bytes]:
        """The distinct SKU ids of the clients seen after ``since``."""
        rows = self._read("SELECT DISTINCT sku FROM clients WHERE last_contact > ?", (since,))
        return [bytes(r[0]) for r in rows]

    def has_client(self, cmid: bytes) -> bool:
        return bool(self._read("SELECT 1 FROM clients WHERE cmid = ?", (cmid,)))

    # ---- reads for the administrator's reports (volact.host.admin) ---------------

    def daily_activity(self, since_day: int) -> list[tuple[int, bytes, str, int]]:
        """(day, SKU id, ``activation`` or ``renewal``, count) from ``since_day`` on."""
        rows = self._read(
            "SELECT day, sku, kind, n FROM daily WHERE day >= ? ORDER BY day, sku", (since_day,)
        )
        return [(int(d), bytes(s), str(k), int(n)) for d, s, k, n in rows]

    def clients_by_expiry(self, now: int, limit: int) -> list[ClientRow]:
        """Up to ``limit`` clients: still valid ones expiring soonest first, then the
        most recently expired (``valid_until`` 0, never activated, last)."""
        cols = "cmid, sku, workstation, address, vm, last_contact, valid_until, last_result"
        rows = self._read(
            f"SELECT {cols} FROM clients WHERE valid_until > ? ORDER BY valid_until LIMIT ?",
            (now, limit),
        )
        if len(rows) < limit:
            rows += self._read(
                f"SELECT {cols} FROM clients WHERE valid_until <= ? "
                "ORDER BY valid_until DESC LIMIT ?",
                (now, limit - len(rows)),
            )
        return [ClientRow(*r) for r in rows]

    def validity_summary(self, *, now: int, warn: int, counted_since: int) -> ValiditySummary:
        """How many known clients are licensed, expiring before ``warn``, expired, never
        activated, and seen after ``counted_since``: one scan."""
        row = self._read(_VALIDITY.format(""), (now, warn, counted_since))[0]
        return ValiditySummary(*(int(x or 0) for x in row))

    def validity_and_days_left(
        self, *, now: int, warn: int, counted_since: int
    ) -> tuple[ValiditySummary, list[tuple[int, int]]]:
        """:meth:`validity_summary` and ``(whole days left, clients)`` over every client
        still valid at ``now``, in the same scan.

        The days come back as one JSON array and are counted here: a GROUP BY would
        sort every valid client first (at a million clients, that sort cost more than
        the scan).
        """
        row = self._read(_VALIDITY.format(_DAYS_LEFT), (now, warn, counted_since))[0]
        days = Counter(json.loads(row[6] or "[]"))
        return ValiditySummary(*(int(x or 0) for x in row[:6])), sorted(days.items())

    def last_event_since(self, kind: str, since: int) -> tuple[int, str] | None:
        """(time, message) of the newest ``kind`` event at or after ``since``, if any.

        Bisection bounds the scan to the events since then.
        """
        rows = self._read(
            "SELECT time, message FROM events WHERE id >= ? AND kind = ? "
            "ORDER BY id DESC LIMIT 1",
            (self._first_event_at(since), kind),
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def last_request_time(self) -> int | None:
        """When the newest ``request`` event happened, None if none is kept."""
        rows = self._read("SELECT time FROM events WHERE kind = 'request' ORDER BY id DESC LIMIT 1")
        return int(rows[0][0]) if rows else None


def _lock(home: Path) -> int:
    path = home / LOCK_FILE
    try:
        return take_lock(path, mode=0o600)
    except LockHeld as held:
        raise StoreError(
            f"the host home {home} is in use by another running host (pid {held.holder}); "
            "stop it first"
        ) from None
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc.strerror}") from exc
