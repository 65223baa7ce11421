"""The authority's store: one suite, run against SQLite and a real PostgreSQL.

Limits, idempotence, revocation, tokens, in-place migration, and the races that
matter: 50 simultaneous activations against a MAK with 10 left, and a host key
raced past its hosts and reactivations. Each test gets a fresh database.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from volact.authority import rules
from volact.authority.db import SCHEMA_VERSION, Store
from volact.catalog import demo_catalog
from volact.documents import RevocationList, installation_id
from volact.errors import UnknownKeyError, VolactError
from volact.exchanges import HostActivationRequest, MakRequest
from volact.keys import KeyKind, ProductKey
from volact.signing import SigningKey

NOW = 1_800_000_000
CATALOG = demo_catalog()
DESKTOP = next(s for s in CATALOG.skus if s.group == "desktop")
SERVER = next(s for s in CATALOG.skus if s.group == "server")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'authority.db'}"
    else:
        pg = request.getfixturevalue("postgres")
        url = pg.create_database("auth_" + uuid.uuid4().hex[:16])
    s = Store(url, pool_size=30)
    s.migrate()
    yield s
    s.close()


def new_key(store: Store, kind: KeyKind, group: str, acts: int, reacts: int = 0) -> ProductKey:
    key = ProductKey.generate(kind, secrets.token_bytes(12))
    store.add_key(key, group, activations=acts, reactivations=reacts, now=NOW)
    return key


def mak_req(
    key: ProductKey, cmid: uuid.UUID | None = None, sku: uuid.UUID = DESKTOP.id
) -> MakRequest:
    cmid = cmid or uuid.uuid4()
    return MakRequest(key.text, cmid, sku, installation_id(cmid, sku), "ws")


def host_req(key: ProductKey, host_id: bytes, pub: bytes | None = None) -> HostActivationRequest:
    return HostActivationRequest(key.text, host_id, pub or SigningKey.generate().public_key, "h")


def test_schema_is_current(store: Store) -> None:
    assert store.schema_version() == SCHEMA_VERSION
    assert store.migrate() == SCHEMA_VERSION  # idempotent


def test_mak_one_activation_per_machine(store: Store) -> None:
    key = new_key(store, KeyKind.MAK, "desktop", 2)
    a, b, c = mak_req(key), mak_req(key), mak_req(key)
    assert store.activate_mak(a, key, CATALOG, now=NOW)[1] is rules.MakOutcome.NEW_MACHINE
    assert store.activate_mak(a, key, CATALOG, now=NOW)[1] is rules.MakOutcome.REPEAT
    # The same machine with another SKU of the key's group is not charged either.
    other = next(s for s in CATALOG.skus if s.group == "desktop" and s.id != DESKTOP.id)
    again = mak_req(key, a.cmid, other.id)
    assert store.activate_mak(again, key, CATALOG, now=NOW)[1] is rules.MakOutcome.REPEAT
    store.activate_mak(b, key, CATALOG, now=NOW)
    with pytest.raises(rules.ExhaustedKey):
        store.activate_mak(c, key, CATALOG, now=NOW)
    rec = store.get_key(key.serial)
    assert rec is not None and rec.used == 2 and rec.left == 0
    detail = store.key_details(key.serial)
    assert {m["cmid"] for m in detail["machines"]} == {str(a.cmid), str(b.cmid)}
    assert len(detail["machines"]) == 3  # a's two SKUs and b


def test_mak_refusals(store: Store) -> None:
    key = new_key(store, KeyKind.MAK, "desktop", 5)
    with pytest.raises(rules.SkuNotCovered):
        store.activate_mak(mak_req(key, sku=SERVER.id), key, CATALOG, now=NOW)
    stranger = ProductKey.generate(KeyKind.MAK, b"\x00" * 12)
    with pytest.raises(UnknownKeyError):
        store.activate_mak(mak_req(stranger), stranger, CATALOG, now=NOW)
    host_key = new_key(store, KeyKind.HOST, "server", 6, 9)
    with pytest.raises(rules.WrongKeyKind):
        store.activate_mak(mak_req(host_key), host_key, CATALOG, now=NOW)
    store.set_key_revoked(key.serial)
    with pytest.raises(rules.RevokedKey):
        store.activate_mak(mak_req(key), key, CATALOG, now=NOW)
    rec = store.get_key(key.serial)
    assert rec is not None and rec.used == 0  # nothing refused was charged


def test_server_mak_covers_desktop(store: Store) -> None:
    key = new_key(store, KeyKind.MAK, "server", 5)
    store.activate_mak(mak_req(key, sku=DESKTOP.id), key, CATALOG, now=NOW)
    store.activate_mak(mak_req(key, sku=SERVER.id), key, CATALOG, now=NOW)


def test_host_key_limits(store: Store) -> None:
    key = new_key(store, KeyKind.HOST, "server", 2, 2)
    h1, h2, h3 = b"\x01" * 8, b"\x02" * 8, b"\x03" * 8
    pub = SigningKey.generate().public_key
    assert (
        store.activate_host(host_req(key, h1, pub), key, now=NOW)[1] is rules.HostOutcome.NEW_HOST
    )
    # A retry with the same public key consumes nothing.
    for _ in range(5):
        out = store.activate_host(host_req(key, h1, pub), key, now=NOW)[1]
        assert out is rules.HostOutcome.REPEAT
    store.activate_host(host_req(key, h2), key, now=NOW)
    with pytest.raises(rules.ExhaustedKey):
        store.activate_host(host_req(key, h3), key, now=NOW)
    # Two reactivations (new public keys) are allowed, the third is not.
    for _ in range(2):
        out = store.activate_host(host_req(key, h1), key, now=NOW)[1]
        assert out is rules.HostOutcome.REACTIVATION
    with pytest.raises(rules.ExhaustedKey, match="reactivations"):
        store.activate_host(host_req(key, h1), key, now=NOW)
    detail = store.key_details(key.serial)
    assert detail["activations_used"] == 2
    hosts = {h["host_id"]: h for h in detail["hosts"]}
    assert hosts[h1.hex()]["activations"] == 3 and hosts[h1.hex()]["reactivations_left"] == 0


def test_revocation(store: Store) -> None:
    vendor = SigningKey.generate()
    key = new_key(store, KeyKind.HOST, "server", 6, 9)
    assert store.latest_revocation_list() is None

    def sign(rl: RevocationList) -> bytes:
        return rl.sign(vendor)

    rl1, _ = store.revoke(
        host_key=None, host_id=b"\x09" * 8, vendor_key_id=vendor.key_id, sign=sign, now=NOW
    )
    assert rl1.sequence == 1 and rl1.host_ids == {b"\x09" * 8}
    with pytest.raises(rules.RevokedKey, match="host"):
        store.activate_host(host_req(key, b"\x09" * 8), key, now=NOW)
    store.activate_host(host_req(key, b"\x08" * 8), key, now=NOW)
    rl2, data = store.revoke(
        host_key=key.serial, host_id=None, vendor_key_id=vendor.key_id, sign=sign, now=NOW + 1
    )
    assert rl2.sequence == 2 and rl2.host_key_ids == {key.serial} and rl2.host_ids == rl1.host_ids
    assert store.latest_revocation_list() == data
    with pytest.raises(rules.RevokedKey):
        store.activate_host(host_req(key, b"\x08" * 8), key, now=NOW)


def test_tokens(store: Store) -> None:
    tid = store.add_token("ops", "ab" * 32, now=NOW)
    assert store.token_valid("ab" * 32) and not store.token_valid("cd" * 32)
    assert store.revoke_tokens(token_id=tid, now=NOW) == 1
    assert not store.token_valid("ab" * 32)
    assert store.list_tokens()[0].revoked_at == NOW


def test_migration_upgrades_a_version_1_store_in_place(store: Store) -> None:
    # Rebuild the database as schema 1 with data in it, then migrate.
    with store.engine.begin() as conn:
        for t in (
            "revocation_lists",
            "revoked_hosts",
            "revoked_host_keys",
            "admin_tokens",
            "mak_activations",
            "host_activations",
            "product_keys",
            "volact_schema",
        ):
            conn.execute(sa.text(f"DROP TABLE {t}"))
    assert store.migrate(target=1) == 0
    assert store.schema_version() == 1
    cols = {c["name"] for c in sa.inspect(store.engine).get_columns("product_keys")}
    assert "note" not in cols
    serial = secrets.token_bytes(12)
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO product_keys (serial, kind, grp, activation_limit,"
                " reactivation_limit, used, revoked, created_at)"
                " VALUES (:s, 'mak', 'desktop', 3, 0, 1, false, 1)"
            ),
            {"s": serial},
        )
    with pytest.raises(VolactError, match="schema 1"):
        store.check_schema()
    assert store.migrate() == 1
    store.check_schema()
    rec = store.get_key(serial)
    assert rec is not None and rec.used == 1 and rec.activation_limit == 3
    cols = {c["name"] for c in sa.inspect(store.engine).get_columns("product_keys")}
    assert "note" in cols
    key = ProductKey(KeyKind.MAK, serial)
    store.activate_mak(mak_req(key), key, CATALOG, now=NOW)
    rec = store.get_key(serial)
    assert rec is not None and rec.used == 2


def _race(n: int, fn: object) -> list[BaseException | None]:
    """Run fn(i) for i in range(n) on n threads released together."""
    barrier = threading.Barrier(n, timeout=30)

    def one(i: int) -> BaseException | None:
        barrier.wait()
        try:
            fn(i)  # type: ignore[operator]
        except VolactError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n), timeout=120))


def test_mak_race_grants_exactly_what_is_left(store: Store) -> None:
    key = new_key(store, KeyKind.MAK, "desktop", 15)
    for _ in range(5):
        store.activate_mak(mak_req(key), key, CATALOG, now=NOW)
    reqs = [mak_req(key) for _ in range(50)]
    outcomes = _race(50, lambda i: store.activate_mak(reqs[i], key, CATALOG, now=NOW))
    ok = [o for o in outcomes if o is None]
    assert len(ok) == 10
    assert all(isinstance(o, rules.ExhaustedKey) for o in outcomes if o is not None)
    rec = store.get_key(key.serial)
    assert rec is not None and rec.used == 15
    assert len(store.key_details(key.serial)["machines"]) == 15


def test_host_key_race_never_passes_its_limits(store: Store) -> None:
    key = new_key(store, KeyKind.HOST, "server", 6, 9)
    # 30 different hosts at once: exactly 6 get in.
    outcomes = _race(30, lambda i: store.activate_host(host_req(key, bytes([i]) * 8), key, now=NOW))
    assert sum(o is None for o in outcomes) == 6
    rec = store.get_key(key.serial)
    assert rec is not None and rec.used == 6
    # 30 reactivations of one of them at once: exactly 9 more get in.
    winner = bytes.fromhex(store.key_details(key.serial)["hosts"][0]["host_id"])
    outcomes = _race(30, lambda i: store.activate_host(host_req(key, winner), key, now=NOW))
    assert sum(o is None for o in outcomes) == 9
    hosts = {h["host_id"]: h for h in store.key_details(key.serial)["hosts"]}
    assert hosts[winner.hex()]["activations"] == 10


def test_batch_in_one_transaction_answers_each_item(store: Store) -> None:
    key = new_key(store, KeyKind.MAK, "desktop", 2)
    a, b, c = mak_req(key), mak_req(key), mak_req(key)
    server_sku = mak_req(key, sku=SERVER.id)
    results = store.activate_mak_many(
        [(a, key), (a, key), (server_sku, key), (b, key), (c, key)], CATALOG, now=NOW
    )
    kinds = [r if isinstance(r, VolactError) else r[1] for r in results]
    assert kinds[0] is rules.MakOutcome.NEW_MACHINE and kinds[1] is rules.MakOutcome.REPEAT
    assert isinstance(kinds[2], rules.SkuNotCovered)
    assert kinds[3] is rules.MakOutcome.NEW_MACHINE
    assert isinstance(kinds[4], rules.ExhaustedKey)
    rec = store.get_key(key.serial)
    assert rec is not None and rec.used == 2
