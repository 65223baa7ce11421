"""The authority's store: issued keys, activated hosts and machines, tokens, revocations.

SQLAlchemy Core over SQLite (one vendor process, the default) or PostgreSQL
(several stateless workers on one database). Every activation runs in one
transaction that first takes the key's row: ``SELECT ... FOR UPDATE`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite (which serialises writers). Inside it
:mod:`volact.authority.rules` decides; this module only reads and applies, so the
key limits hold exactly under any number of concurrent requests and workers.
Direct MAK activations that arrive together share one such transaction
(:meth:`Store.activate_mak`), as a proxy's batch does.

The schema is versioned in ``volact_schema``; :func:`Store.migrate` applies the
missing steps of :data:`MIGRATIONS` in place, under a lock, so an existing store
upgrades without losing a row. Database errors become :class:`StoreError`.
"""

from __future__ import annotations

import copy
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from volact.authority import rules
from volact.authority.rules import HostOutcome, HostRecord, KeyRecord, MakOutcome
from volact.catalog import Catalog
from volact.documents import RevocationList
from volact.errors import ConfigurationError, StoreError, UnknownKeyError, VolactError
from volact.exchanges import HostActivationRequest, MakRequest
from volact.keys import KeyKind, ProductKey

SCHEMA_VERSION = 3

metadata = sa.MetaData()

schema_table = sa.Table(
    "volact_schema", metadata, sa.Column("version", sa.Integer, nullable=False)
)

product_keys = sa.Table(
    "product_keys",
    metadata,
    sa.Column("serial", sa.LargeBinary(12), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("grp", sa.String(32), nullable=False),
    sa.Column("activation_limit", sa.Integer, nullable=False),
    sa.Column("reactivation_limit", sa.Integer, nullable=False),
    sa.Column("used", sa.Integer, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("note", sa.String(200), nullable=True),  # added in schema 2
)

host_activations = sa.Table(
    "host_activations",
    metadata,
    sa.Column("key_serial", sa.LargeBinary(12), primary_key=True),
    sa.Column("host_id", sa.LargeBinary(8), primary_key=True),
    sa.Column("host_public_key", sa.LargeBinary(32), nullable=False),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("activations", sa.Integer, nullable=False),
    sa.Column("first_at", sa.BigInteger, nullable=False),
    sa.Column("last_at", sa.BigInteger, nullable=False),
)

mak_activations = sa.Table(
    "mak_activations",
    metadata,
    sa.Column("key_serial", sa.LargeBinary(12), primary_key=True),
    sa.Column("installation_id", sa.LargeBinary(16), primary_key=True),
    sa.Column("cmid", sa.String(36), nullable=False),
    sa.Column("sku", sa.String(36), nullable=False),
    sa.Column("workstation", sa.String(63), nullable=False),
    sa.Column("activated_at", sa.BigInteger, nullable=False),
)

admin_tokens = sa.Table(
    "admin_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)

# Which host key each host id belongs to (schema 3). A host id is unique across the
# authority: the first key to activate it owns it, and another key's activation of
# the same id is refused (an impostor copying a host's id from its replies).
host_ids = sa.Table(
    "host_ids",
    metadata,
    sa.Column("host_id", sa.LargeBinary(8), primary_key=True),
    sa.Column("key_serial", sa.LargeBinary(12), nullable=False),
    sa.Column("first_at", sa.BigInteger, nullable=False),
)

revoked_host_keys = sa.Table(
    "revoked_host_keys",
    metadata,
    sa.Column("serial", sa.LargeBinary(12), primary_key=True),
    sa.Column("revoked_at", sa.BigInteger, nullable=False),
)

revoked_hosts = sa.Table(
    "revoked_hosts",
    metadata,
    sa.Column("host_id", sa.LargeBinary(8), primary_key=True),
    sa.Column("revoked_at", sa.BigInteger, nullable=False),
)

revocation_lists = sa.Table(
    "revocation_lists",
    metadata,
    sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("issued_at", sa.BigInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

# Schema 1 as it shipped: the product_keys table before its ``note`` column. Frozen
# here so that migrating an old store creates exactly what version 1 had.
_v1 = sa.MetaData()
_product_keys_v1 = sa.Table(
    "product_keys",
    _v1,
    *(
        sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
        for c in product_keys.columns
        if c.name != "note"
    ),
)


def _migrate_1(conn: Connection) -> None:
    _product_keys_v1.create(conn)
    for t in (
        host_activations, mak_activations, admin_tokens,
        revoked_host_keys, revoked_hosts, revocation_lists,
    ):  # fmt: skip
        t.create(conn)


def _migrate_2(conn: Connection) -> None:
    # A note per key for the vendor's records, and the index the MAK rule's
    # "has this machine been activated with this key" lookup needs at scale.
    conn.execute(sa.text("ALTER TABLE product_keys ADD COLUMN note VARCHAR(200)"))
    conn.execute(sa.text("CREATE INDEX ix_mak_key_cmid ON mak_activations (key_serial, cmid)"))


def _migrate_3(conn: Connection) -> None:
    # Host ids become unique across the authority. Each id already in use is given
    # to the key that activated it first (ties: the lower serial); a copy of it
    # under another key stays on record, but that key can no longer activate it.
    host_ids.create(conn)
    rows = conn.execute(
        sa.select(
            host_activations.c.host_id, host_activations.c.key_serial,
            host_activations.c.first_at,
        ).order_by(
            host_activations.c.first_at, host_activations.c.key_serial
        )
    ).all()  # fmt: skip
    owners: dict[bytes, dict[str, Any]] = {}
    for host_id, serial, first_at in rows:
        owners.setdefault(
            bytes(host_id),
            {"host_id": bytes(host_id), "key_serial": bytes(serial), "first_at": first_at},
        )
    if owners:
        conn.execute(host_ids.insert(), list(owners.values()))


#: Step ``i`` upgrades a store from version ``i`` to ``i + 1``.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_migrate_1, _migrate_2, _migrate_3)
assert len(MIGRATIONS) == SCHEMA_VERSION


@dataclass(frozen=True)
class TokenRecord:
    """An admin bearer token (its hash only)."""

    id: int  #: row id
    name: str  #: what it is for
    created_at: int  #: Unix seconds
    revoked_at: int | None  #: Unix seconds, or None while it works


_SECRET_PARAM = re.compile(r"(?i)\b(password|passwd|pwd|sslpassword|passfile)=[^&;\s]*")


def redact_url(url: str) -> str:
    """``url`` with its password (and any password query parameter) replaced by ``***``.

    For anything printed or logged: a database URL may carry the password, and
    ``authority.json`` keeps it for the service (that file is the owner's only).
    """
    scheme, sep, rest = url.partition("://")
    if sep:
        head, q, query = rest.partition("?")
        creds, at, hostpart = head.rpartition("@")
        if at and ":" in creds:
            head = f"{creds.split(':', 1)[0]}:***@{hostpart}"
        rest = head + q + query
    else:  # not even scheme://: whatever sits between a colon and an @ may be a password
        scheme = re.sub(r":[^:@/\s]*@", ":***@", scheme)
    return _SECRET_PARAM.sub(r"\1=***", scheme + sep + rest)


def scrub(text: str, url: str) -> str:
    """``text`` (an error message about ``url``) with the URL's secrets masked."""
    rest = url.partition("://")[2]
    creds, at, _ = rest.partition("?")[0].rpartition("@")
    if url:
        text = text.replace(url, redact_url(url))
    if at and ":" in creds:
        password = creds.split(":", 1)[1]
        for secret in {password, unquote(password)}:
            if len(secret) >= 1:
                text = text.replace(secret, "***")
    return _SECRET_PARAM.sub(r"\1=***", text)


def create_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for ``url`` set up for the authority's locking discipline."""
    try:
        if url.startswith("sqlite"):
            engine = sa.create_engine(
                url, connect_args={"timeout": 60, "check_same_thread": False}
            )
            _sqlite_immediate(engine)
        else:
            engine = sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size)
            _ping_when_idle(engine)
    except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
        raise ConfigurationError(
            scrub(f"bad database URL {url!r}: {exc}", url)
        ) from None
    return engine


#: A pooled connection unused this long is checked (one round trip) before use.
IDLE_PING_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    # SQLAlchemy's pool_pre_ping costs a round trip per transaction, which is a
    # fifth of a direct activation's. A connection in steady use proves itself
    # alive; one that sat idle (across a database restart, say) is pinged, and a
    # dead one replaced, before a request sees it.
    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the driver's own error type: any means "dead"
            raise sa.exc.DisconnectionError(str(exc)) from exc


#: What one MAK activation decides: its record and outcome, or the refusal.
MakResult = tuple[KeyRecord, MakOutcome] | VolactError


@dataclass(eq=False)
class _MakItem:
    """One MAK activation waiting for, or answered by, a shared transaction."""

    req: MakRequest  #: the request
    key: ProductKey  #: its key, parsed
    catalog: Catalog  #: the vendor's catalog
    now: int  #: Unix seconds, for the machine's record
    result: MakResult | None = None  #: set once its transaction committed
    failure: Exception | None = None  #: set if its transaction failed
    done: bool = False  #: answered (result or failure)


def _sqlite_immediate(engine: Engine) -> None:
    # pysqlite's own BEGIN is deferred, which lets two transactions read the same
    # counter and then both write it. Take the write lock at BEGIN instead.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Store:
    """The authority's durable state behind one engine."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        # Direct MAK activations waiting for a transaction, and the lock whose
        # holder runs one transaction for all of them (see activate_mak).
        self._mak_queue: list[_MakItem] = []
        self._mak_queue_lock = threading.Lock()
        self._mak_turn = threading.Lock()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"the authority's database failed: {scrub(_reason(exc), self.url)}"
            ) from exc

    # ------------------------------------------------------------------ schema

    def schema_version(self) -> int:
        with self._tx() as conn:
            return self._version(conn)

    @staticmethod
    def _version(conn: Connection) -> int:
        if not sa.inspect(conn).has_table("volact_schema"):
            return 0
        v = conn.execute(sa.select(schema_table.c.version)).scalar()
        return int(v or 0)

    def migrate(self, *, target: int = SCHEMA_VERSION) -> int:
        """Upgrade the schema in place to ``target``; return the version it had."""
        with self._tx() as conn:
            if self.is_postgres:
                # Two processes migrating at once wait for each other.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7616161)"))
            before = self._version(conn)
            if before > SCHEMA_VERSION:
                raise StoreError(
                    f"the database has schema {before}, newer than this volact's "
                    f"{SCHEMA_VERSION}: upgrade volact"
                )
            if before == 0:
                schema_table.create(conn)
                conn.execute(schema_table.insert().values(version=0))
            for step in range(before, target):
                MIGRATIONS[step](conn)
                conn.execute(schema_table.update().values(version=step + 1))
            return before

    def check_schema(self) -> None:
        v = self.schema_version()
        if v != SCHEMA_VERSION:
            raise StoreError(
                f"the database has schema {v}, this volact needs {SCHEMA_VERSION}: "
                "run `volact authority migrate`"
            )

    # ------------------------------------------------------------------ keys

    def add_key(
        self,
        key: ProductKey,
        group: str,
        *,
        activations: int,
        reactivations: int,
        now: int,
        note: str | None = None,
    ) -> KeyRecord:
        rules.check_limits(key.kind, activations, reactivations)
        with self._tx() as conn:
            conn.execute(
                product_keys.insert().values(
                    serial=key.serial, kind=key.kind.label, grp=group,
                    activation_limit=activations, reactivation_limit=reactivations,
                    used=0, revoked=False, created_at=now, note=note,
                )
            )  # fmt: skip
        return KeyRecord(key.serial, key.kind, group, activations, reactivations, 0)

    @staticmethod
    def _key(conn: Connection, serial: bytes, *, lock: bool) -> KeyRecord | None:
        q = sa.select(product_keys).where(product_keys.c.serial == serial)
        if lock:
            q = q.with_for_update()
        row = conn.execute(q).mappings().first()
        return None if row is None else _key_record(row)

    def get_key(self, serial: bytes) -> KeyRecord | None:
        with self._tx() as conn:
            return self._key(conn, serial, lock=False)

    def list_keys(self, *, limit: int = 1000, offset: int = 0) -> list[KeyRecord]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(product_keys.c.serial)
                .order_by(product_keys.c.created_at, product_keys.c.serial)
                .limit(limit)
                .offset(offset)
            ).all()
            out = []
            for (serial,) in rows:
                rec = self._key(conn, bytes(serial), lock=False)
                if rec is not None:
                    out.append(rec)
            return out

    def key_details(self, serial: bytes) -> dict[str, Any]:
        """Everything an administrator asks about one key (JSON-ready)."""
        with self._tx() as conn:
            rec = self._key(conn, serial, lock=False)
            if rec is None:
                raise UnknownKeyError("no key with this serial was issued by this authority")
            out = key_summary(rec)
            if rec.kind is KeyKind.HOST:
                rows = conn.execute(
                    sa.select(host_activations)
                    .where(host_activations.c.key_serial == serial)
                    .order_by(host_activations.c.first_at)
                ).mappings()
                out["hosts"] = [
                    {
                        "host_id": bytes(r["host_id"]).hex(),
                        "hostname": r["hostname"],
                        "activations": r["activations"],
                        "reactivations_left": max(
                            0, 1 + rec.reactivation_limit - r["activations"]
                        ),
                        "first_activated_at": r["first_at"],
                        "last_activated_at": r["last_at"],
                    }
                    for r in rows
                ]
            else:
                rows = conn.execute(
                    sa.select(mak_activations)
                    .where(mak_activations.c.key_serial == serial)
                    .order_by(mak_activations.c.activated_at)
                ).mappings()
                out["machines"] = [
                    {
                        "cmid": r["cmid"],
                        "sku": r["sku"],
                        "installation_id": bytes(r["installation_id"]).hex(),
                        "workstation": r["workstation"],
                        "activated_at": r["activated_at"],
                    }
                    for r in rows
                ]
            return out

    def set_key_revoked(self, serial: bytes) -> KeyRecord:
        with self._tx() as conn:
            rec = self._key(conn, serial, lock=True)
            if rec is None:
                raise UnknownKeyError("this key was not issued by this authority")
            conn.execute(
                product_keys.update().where(product_keys.c.serial == serial).values(revoked=True)
            )
            return rec

    # ------------------------------------------------------------------ activations

    def activate_host(
        self, req: HostActivationRequest, key: ProductKey, *, now: int
    ) -> tuple[KeyRecord, HostOutcome]:
        """Apply one host-key activation atomically; raise a :class:`Refusal` if refused."""
        with self._tx() as conn:
            rec = self._key(conn, key.serial, lock=True)
            if rec is None:
                raise UnknownKeyError("this host key was not issued by this vendor")
            row = conn.execute(
                sa.select(host_activations).where(
                    host_activations.c.key_serial == key.serial,
                    host_activations.c.host_id == req.host_id,
                )
            ).mappings().first()
            existing = (
                None
                if row is None
                else HostRecord(
                    bytes(row["host_id"]), bytes(row["host_public_key"]), row["activations"]
                )
            )
            host_revoked = (
                conn.execute(
                    sa.select(revoked_hosts.c.host_id).where(
                        revoked_hosts.c.host_id == req.host_id
                    )
                ).first()
                is not None
            )
            owner = conn.execute(
                sa.select(host_ids.c.key_serial).where(host_ids.c.host_id == req.host_id)
            ).scalar()
            outcome = rules.decide_host(
                rec, existing, req.host_public_key, host_revoked=host_revoked,
                owner=None if owner is None else bytes(owner),
            )  # fmt: skip
            if owner is None:
                self._claim_host_id(conn, req.host_id, key.serial, now)
            if outcome is HostOutcome.NEW_HOST:
                conn.execute(
                    host_activations.insert().values(
                        key_serial=key.serial, host_id=req.host_id,
                        host_public_key=req.host_public_key, hostname=req.hostname,
                        activations=1, first_at=now, last_at=now,
                    )
                )  # fmt: skip
                conn.execute(
                    product_keys.update()
                    .where(product_keys.c.serial == key.serial)
                    .values(used=product_keys.c.used + 1)
                )
            else:
                bump = 1 if outcome is HostOutcome.REACTIVATION else 0
                conn.execute(
                    host_activations.update()
                    .where(
                        host_activations.c.key_serial == key.serial,
                        host_activations.c.host_id == req.host_id,
                    )
                    .values(
                        host_public_key=req.host_public_key,
                        hostname=req.hostname,
                        activations=host_activations.c.activations + bump,
                        last_at=now,
                    )
                )
            return rec, outcome

    @staticmethod
    def _claim_host_id(conn: Connection, host_id: bytes, serial: bytes, now: int) -> None:
        # Two keys racing for one new host id hold different key locks; the primary
        # key decides (PostgreSQL makes the second insert wait for the first commit,
        # then fail). SQLite's BEGIN IMMEDIATE already serialises them.
        try:
            conn.execute(host_ids.insert().values(host_id=host_id, key_serial=serial, first_at=now))
        except sa.exc.IntegrityError:
            raise rules.HostIdTaken(
                "another host key activated a host with this id at the same moment; "
                "give this host a new id (a fresh host home) and activate again"
            ) from None

    def host_owner(self, host_id: bytes) -> bytes | None:
        """The serial of the host key that owns ``host_id``, or None if never activated."""
        with self._tx() as conn:
            owner = conn.execute(
                sa.select(host_ids.c.key_serial).where(host_ids.c.host_id == host_id)
            ).scalar()
            return None if owner is None else bytes(owner)

    def activate_mak(
        self, req: MakRequest, key: ProductKey, catalog: Catalog, *, now: int
    ) -> tuple[KeyRecord, MakOutcome]:
        """Apply one MAK activation atomically; raise a :class:`Refusal` if refused.

        Concurrent calls share transactions (group commit): each call queues its
        request, and whichever thread gets the turn applies every queued request
        in one transaction, decided one by one in queue order exactly as a batch
        is, and commits before any of them returns. Under load one commit (and on
        PostgreSQL one key-row lock and its six round trips) then serves many
        machines instead of one, and waiting threads sleep on a lock instead of
        each running its own transaction into the database's queue (PostgreSQL's
        row lock, SQLite's busy-retry sleeps), waking for every statement. A
        failed transaction fails every request in it, as it would have failed
        each alone; nothing of it is committed.
        """
        item = _MakItem(req, key, catalog, now)
        with self._mak_queue_lock:
            self._mak_queue.append(item)
        while not item.done:
            with self._mak_turn:
                if item.done:  # another thread's transaction answered it
                    break
                with self._mak_queue_lock:
                    group = self._mak_queue[: rules.BATCH_LIMIT]
                    del self._mak_queue[: rules.BATCH_LIMIT]
                self._apply_group(group, item)
        if item.failure is not None:
            # The transaction another thread ran for this one failed: the same error,
            # as a copy (one exception object raised in two threads shares a traceback).
            raise copy.copy(item.failure) from item.failure.__cause__
        assert item.result is not None
        if isinstance(item.result, VolactError):
            raise item.result
        return item.result

    def _apply_group(self, group: list[_MakItem], own: _MakItem) -> None:
        """One transaction for ``group``; raises only what concerns ``own``."""
        try:
            with self._tx() as conn:
                results = self._activate_maks(conn, group)
        except Exception as exc:
            for it in group:
                if it is not own:
                    it.failure, it.done = exc, True
            raise
        except BaseException:
            # Interrupted (rolled back): the others go back to the queue for the next turn.
            with self._mak_queue_lock:
                self._mak_queue[:0] = [it for it in group if it is not own]
            raise
        for it, result in zip(group, results, strict=True):
            it.result, it.done = result, True

    def activate_mak_many(
        self, items: list[tuple[MakRequest, ProductKey]], catalog: Catalog, *, now: int
    ) -> list[MakResult]:
        """Apply many MAK activations in one transaction (one commit for a proxy batch).

        Each item is decided on its own; a refusal is returned in its place and
        writes nothing (rules decide before any write), so the others go on.
        """
        if not items:
            return []
        with self._tx() as conn:
            return self._activate_maks(
                conn, [_MakItem(req, key, catalog, now) for req, key in items]
            )

    # Built once: the MAK path runs per request, and building an expression costs
    # more Python than running it on SQLite.
    _LOCK_KEYS = (
        sa.select(product_keys)
        .where(product_keys.c.serial.in_(sa.bindparam("serials", expanding=True)))
        .order_by(product_keys.c.serial)
        .with_for_update()
    )
    _KNOWN = sa.union_all(
        sa.select(
            mak_activations.c.key_serial, mak_activations.c.cmid, sa.null().label("iid")
        ).where(
            mak_activations.c.key_serial.in_(sa.bindparam("serials", expanding=True)),
            mak_activations.c.cmid.in_(sa.bindparam("cmids", expanding=True)),
        ),
        sa.select(
            mak_activations.c.key_serial, sa.null(), mak_activations.c.installation_id
        ).where(
            mak_activations.c.key_serial.in_(sa.bindparam("serials", expanding=True)),
            mak_activations.c.installation_id.in_(sa.bindparam("iids", expanding=True)),
        ),
    )
    _SET_USED = (
        product_keys.update()
        .where(product_keys.c.serial == sa.bindparam("s"))
        .values(used=sa.bindparam("u"))
    )
    _ADD_MACHINES = mak_activations.insert()
    # On PostgreSQL the batch's values travel as arrays, so each statement's text
    # is the same whatever the batch size: the driver parses and prepares it once,
    # and the insert is one statement, not one execution per row.
    _KNOWN_PG = sa.text(
        "SELECT key_serial, cmid, NULL AS iid FROM mak_activations"
        " WHERE key_serial = ANY(:serials) AND cmid = ANY(:cmids)"
        " UNION ALL"
        " SELECT key_serial, NULL, installation_id FROM mak_activations"
        " WHERE key_serial = ANY(:serials) AND installation_id = ANY(:iids)"
    )
    _ADD_MACHINES_PG = sa.text(
        "INSERT INTO mak_activations"
        " (key_serial, installation_id, cmid, sku, workstation, activated_at)"
        " SELECT * FROM unnest(CAST(:k AS bytea[]), CAST(:i AS bytea[]),"
        " CAST(:c AS varchar[]), CAST(:s AS varchar[]), CAST(:w AS varchar[]),"
        " CAST(:t AS bigint[]))"
    )

    def _activate_maks(self, conn: Connection, items: Sequence[_MakItem]) -> list[MakResult]:
        # A fixed number of statements whatever the batch size (each a round trip
        # on PostgreSQL): lock the batch's keys, read the machines they already
        # know, decide every item in memory in request order, then one UPDATE of
        # the counters and one multi-row INSERT of the new machines.
        serials = sorted({it.key.serial for it in items})
        # Locked in serial order, so two batches sharing keys cannot deadlock.
        rows = conn.execute(self._LOCK_KEYS, {"serials": serials}).mappings()
        recs = {bytes(r["serial"]): _key_record(r) for r in rows}
        found = conn.execute(self._KNOWN_PG if self.is_postgres else self._KNOWN, {
            "serials": serials,
            "cmids": sorted({str(it.req.cmid) for it in items}),
            "iids": sorted({it.req.installation_id for it in items}),
        }).all()  # fmt: skip
        known_cmids = {(bytes(s), c) for s, c, _ in found if c is not None}
        known_iids = {(bytes(s), bytes(i)) for s, _, i in found if i is not None}
        used = {serial: rec.used for serial, rec in recs.items()}
        inserts: list[dict[str, Any]] = []
        out: list[MakResult] = []
        for it in items:
            req, serial = it.req, it.key.serial
            rec = recs.get(serial)
            if rec is None:
                out.append(UnknownKeyError("this MAK was not issued by this vendor"))
                continue
            cmid = str(req.cmid)
            try:
                outcome = rules.decide_mak(
                    rec, it.catalog, req.sku, machine_known=(serial, cmid) in known_cmids,
                    used=used[serial],
                )  # fmt: skip
            except rules.Refusal as exc:
                out.append(exc)
                continue
            if outcome is MakOutcome.NEW_MACHINE:
                used[serial] += 1
                known_cmids.add((serial, cmid))
            if (serial, req.installation_id) not in known_iids:
                # A new SKU on a known machine is recorded, not charged.
                known_iids.add((serial, req.installation_id))
                inserts.append({
                    "key_serial": serial, "installation_id": req.installation_id,
                    "cmid": cmid, "sku": str(req.sku), "workstation": req.workstation,
                    "activated_at": it.now,
                })  # fmt: skip
            out.append((rec, outcome))
        changed = [{"s": s, "u": n} for s, n in used.items() if n != recs[s].used]
        if changed:
            conn.execute(self._SET_USED, changed)
        if inserts and self.is_postgres:
            conn.execute(self._ADD_MACHINES_PG, {
                k: [row[col] for row in inserts]
                for k, col in (("k", "key_serial"), ("i", "installation_id"), ("c", "cmid"),
                               ("s", "sku"), ("w", "workstation"), ("t", "activated_at"))
            })  # fmt: skip
        elif inserts:
            conn.execute(self._ADD_MACHINES, inserts)
        return out

    # ------------------------------------------------------------------ tokens

    def add_token(self, name: str, token_sha256: str, *, now: int) -> int:
        with self._tx() as conn:
            res = conn.execute(
                admin_tokens.insert().values(
                    name=name, token_sha256=token_sha256, created_at=now, revoked_at=None
                )
            )
            pk = res.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def token_valid(self, token_sha256: str) -> bool:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(admin_tokens.c.id).where(
                    admin_tokens.c.token_sha256 == token_sha256,
                    admin_tokens.c.revoked_at.is_(None),
                )
            ).first()
            return row is not None

    def list_tokens(self) -> list[TokenRecord]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(admin_tokens).order_by(admin_tokens.c.id)).mappings()
            return [
                TokenRecord(r["id"], r["name"], r["created_at"], r["revoked_at"]) for r in rows
            ]

    def revoke_tokens(self, *, token_id: int | None = None, name: str | None = None,
                      now: int) -> int:  # fmt: skip
        """Revoke by id or by name; return how many tokens were revoked."""
        cond = admin_tokens.c.id == token_id if token_id is not None else (
            admin_tokens.c.name == name
        )
        with self._tx() as conn:
            res = conn.execute(
                admin_tokens.update()
                .where(cond, admin_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return int(res.rowcount)

    # ------------------------------------------------------------------ revocations

    def revoke(
        self,
        *,
        host_key: bytes | None,
        host_id: bytes | None,
        vendor_key_id: bytes,
        sign: Callable[[RevocationList], bytes],
        now: int,
        with_host_key: bool = False,
        known_host: bool = False,
    ) -> tuple[RevocationList, bytes]:
        """Add a host key and/or a host to the revoked set and sign the next list.

        Host ids are unique across the authority, so a host id names at most one
        host. ``known_host`` refuses an id this authority never activated (a typo
        would otherwise revoke nothing, silently); ``with_host_key`` also revokes
        the host key that host was activated with, in the same list.
        """
        with self._tx() as conn:
            if self.is_postgres:
                conn.execute(sa.text("LOCK TABLE revocation_lists IN EXCLUSIVE MODE"))
            if host_id is not None:
                owner = conn.execute(
                    sa.select(host_ids.c.key_serial).where(host_ids.c.host_id == host_id)
                ).scalar()
                if owner is None and (known_host or with_host_key):
                    raise rules.UnknownHost(
                        f"no host with id {host_id.hex()} was activated by this authority; "
                        "check the id (`volact authority keys KEY` lists a key's hosts)"
                    )
                if with_host_key and owner is not None:
                    host_key = bytes(owner)
            if host_key is not None:
                rec = self._key(conn, host_key, lock=True)
                if rec is None:
                    raise UnknownKeyError("this host key was not issued by this authority")
                conn.execute(
                    product_keys.update()
                    .where(product_keys.c.serial == host_key)
                    .values(revoked=True)
                )
                if conn.execute(
                    sa.select(revoked_host_keys).where(revoked_host_keys.c.serial == host_key)
                ).first() is None:
                    conn.execute(revoked_host_keys.insert().values(serial=host_key, revoked_at=now))
            if host_id is not None and conn.execute(
                sa.select(revoked_hosts).where(revoked_hosts.c.host_id == host_id)
            ).first() is None:
                conn.execute(revoked_hosts.insert().values(host_id=host_id, revoked_at=now))
            seq = conn.execute(sa.select(sa.func.max(revocation_lists.c.sequence))).scalar()
            keys = frozenset(
                bytes(r[0]) for r in conn.execute(sa.select(revoked_host_keys.c.serial))
            )
            hosts = frozenset(
                bytes(r[0]) for r in conn.execute(sa.select(revoked_hosts.c.host_id))
            )
            rl = RevocationList(vendor_key_id, int(seq or 0) + 1, now, keys, hosts)
            data = sign(rl)
            conn.execute(
                revocation_lists.insert().values(sequence=rl.sequence, issued_at=now, data=data)
            )
            return rl, data

    def latest_revocation_list(self) -> bytes | None:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(revocation_lists.c.data)
                .order_by(revocation_lists.c.sequence.desc())
                .limit(1)
            ).first()
            return None if row is None else bytes(row[0])


def _key_record(row: Any) -> KeyRecord:
    return KeyRecord(
        bytes(row["serial"]),
        KeyKind.from_label(row["kind"]),
        row["grp"],
        row["activation_limit"],
        row["reactivation_limit"],
        row["used"],
        bool(row["revoked"]),
    )


def key_summary(rec: KeyRecord) -> dict[str, Any]:
    """The JSON-ready summary of a key (no per-host or per-machine detail)."""
    out: dict[str, Any] = {
        "key": rec.text,
        "key_id": rec.serial.hex(),
        "kind": rec.kind.label,
        "group": rec.group,
        "activations": rec.activation_limit,
        "activations_used": rec.used,
        "activations_left": rec.left,
        "revoked": rec.revoked,
    }
    if rec.kind is KeyKind.HOST:
        out["reactivations"] = rec.reactivation_limit
    return out


def _reason(exc: sa.exc.SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).strip().splitlines()[0][:300]


def cmid_of(obj: Any) -> uuid.UUID:
    """The cmid a possibly malformed request names, or the nil UUID."""
    try:
        return uuid.UUID(str(obj.get("cmid"))) if isinstance(obj, dict) else uuid.UUID(int=0)
    except ValueError:
        return uuid.UUID(int=0)
