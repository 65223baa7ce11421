"""The authority's store: one suite, run against SQLite and a real PostgreSQL.

Limits, idempotence, revocation, tokens, in-place migration, and the races that
matter: 50 simultaneous activations against a MAK with 10 left, and a host key
raced past its hosts and reactivations. Each test gets a fresh database.
"""

from __future__ import annotations

import secrets
import threading
import time
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
from volact.errors import StoreError, UnknownKeyError, VolactError
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
            "host_ids",
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


def test_migration_3_gives_each_host_id_to_its_first_key(store: Store) -> None:
    # A schema-2 store where two keys activated the same host id (possible before
    # host ids were unique): the first activation keeps the id, the copy is kept on
    # record but can no longer be activated, and nothing is lost.
    first = new_key(store, KeyKind.HOST, "server", 6, 9)
    copy = new_key(store, KeyKind.HOST, "server", 6, 9)
    shared, own = b"\x5a" * 8, b"\x5b" * 8
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE host_ids"))
        conn.execute(sa.text("UPDATE volact_schema SET version = 2"))
        for serial, host_id, at in ((copy, shared, 20), (first, shared, 10), (copy, own, 30)):
            conn.execute(
                sa.text(
                    "INSERT INTO host_activations (key_serial, host_id, host_public_key,"
                    " hostname, activations, first_at, last_at)"
                    " VALUES (:k, :h, :p, 'h', 1, :t, :t)"
                ),
                {"k": serial.serial, "h": host_id, "p": b"\x01" * 32, "t": at},
            )
    assert store.migrate() == 2 and store.schema_version() == SCHEMA_VERSION
    assert store.host_owner(shared) == first.serial
    assert store.host_owner(own) == copy.serial
    assert len(store.key_details(copy.serial)["hosts"]) == 2  # nothing dropped
    with pytest.raises(rules.HostIdTaken):
        store.activate_host(host_req(copy, shared), copy, now=NOW)
    assert store.activate_host(host_req(first, shared), first, now=NOW)[1] in {
        rules.HostOutcome.REACTIVATION, rules.HostOutcome.REPEAT,
    }  # fmt: skip
    assert store.activate_host(host_req(copy, own), copy, now=NOW)[1] is (
        rules.HostOutcome.REACTIVATION
    )


def test_a_host_id_belongs_to_one_host_key(store: Store) -> None:
    legit = new_key(store, KeyKind.HOST, "server", 6, 9)
    other = new_key(store, KeyKind.HOST, "server", 6, 9)
    host_id = secrets.token_bytes(8)
    store.activate_host(host_req(legit, host_id), legit, now=NOW)
    # An impostor copies the id from the host's replies and activates it with
    # another host key: refused, and nothing is charged to that key.
    with pytest.raises(rules.HostIdTaken) as info:
        store.activate_host(host_req(other, host_id), other, now=NOW)
    assert info.value.code == "host_id_taken"
    rec = store.get_key(other.serial)
    assert rec is not None and rec.used == 0
    assert store.key_details(other.serial)["hosts"] == []
    assert store.host_owner(host_id) == legit.serial
    # The owner still reactivates it.
    out = store.activate_host(host_req(legit, host_id), legit, now=NOW)[1]
    assert out is rules.HostOutcome.REACTIVATION


def test_two_keys_racing_for_one_host_id_one_wins(store: Store) -> None:
    keys = [new_key(store, KeyKind.HOST, "server", 6, 9) for _ in range(8)]
    host_id = secrets.token_bytes(8)
    outcomes = _race(
        8, lambda i: store.activate_host(host_req(keys[i], host_id), keys[i], now=NOW)
    )
    assert sum(o is None for o in outcomes) == 1
    assert all(isinstance(o, rules.HostIdTaken) for o in outcomes if o is not None)
    owner = store.host_owner(host_id)
    assert sum(len(store.key_details(k.serial)["hosts"]) for k in keys) == 1
    assert sum(store.get_key(k.serial).used for k in keys) == 1  # type: ignore[union-attr]
    assert owner in {k.serial for k in keys}


def test_revoking_a_host_id_hits_that_host_only_and_optionally_its_key(store: Store) -> None:
    vendor = SigningKey.generate()
    key = new_key(store, KeyKind.HOST, "server", 6, 9)
    bystander = new_key(store, KeyKind.HOST, "server", 6, 9)
    h1, h2, h3 = (secrets.token_bytes(8) for _ in range(3))
    for k, h in ((key, h1), (key, h2), (bystander, h3)):
        store.activate_host(host_req(k, h), k, now=NOW)

    def revoke(host_id: bytes, **kw: bool) -> RevocationList:
        return store.revoke(
            host_key=None, host_id=host_id, vendor_key_id=vendor.key_id,
            sign=lambda rl: rl.sign(vendor), now=NOW, **kw,
        )[0]  # fmt: skip

    with pytest.raises(rules.UnknownHost):
        revoke(b"\x77" * 8, known_host=True)  # a typo revokes nothing
    assert store.latest_revocation_list() is None
    rl = revoke(h1)
    assert rl.host_ids == {h1} and rl.host_key_ids == frozenset()
    # Revoking the host alone leaves its key usable for a new host id...
    store.activate_host(host_req(key, secrets.token_bytes(8)), key, now=NOW)
    # ...revoking it with its key stops that too, and no other key is touched.
    rl = revoke(h2, with_host_key=True)
    assert rl.host_ids == {h1, h2} and rl.host_key_ids == {key.serial}
    with pytest.raises(rules.RevokedKey):
        store.activate_host(host_req(key, secrets.token_bytes(8)), key, now=NOW)
    assert not store.get_key(bystander.serial).revoked  # type: ignore[union-attr]
    store.activate_host(host_req(bystander, h3), bystander, now=NOW)


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


def test_batch_with_several_keys_and_repeats_in_one_call(store: Store) -> None:
    k1 = new_key(store, KeyKind.MAK, "desktop", 3)
    k2 = new_key(store, KeyKind.MAK, "server", 1)
    stranger = ProductKey.generate(KeyKind.MAK, secrets.token_bytes(12))
    known = mak_req(k1)
    store.activate_mak(known, k1, CATALOG, now=NOW)
    other = next(s for s in CATALOG.skus if s.group == "desktop" and s.id != DESKTOP.id)
    fresh = mak_req(k1)
    items = [
        (known, k1),  # already on record: repeat, no charge, no new row
        (fresh, k1),  # new
        (mak_req(k1, fresh.cmid, other.id), k1),  # same machine, another SKU: repeat
        (fresh, k1),  # the same request twice in one batch: repeat
        (mak_req(k2, sku=SERVER.id), k2),
        (mak_req(k2), k2),  # k2 has no activation left
        (mak_req(stranger), stranger),
        (mak_req(k1), k1),  # k1's third and last
        (mak_req(k1), k1),  # exhausted
    ]
    results = store.activate_mak_many(items, CATALOG, now=NOW)
    kinds = [type(r).__name__ if isinstance(r, VolactError) else r[1].name for r in results]
    assert kinds == [
        "REPEAT", "NEW_MACHINE", "REPEAT", "REPEAT", "NEW_MACHINE", "ExhaustedKey",
        "UnknownKeyError", "NEW_MACHINE", "ExhaustedKey",
    ]  # fmt: skip
    assert store.get_key(k1.serial).used == 3  # type: ignore[union-attr]
    assert store.get_key(k2.serial).used == 1  # type: ignore[union-attr]
    machines = store.key_details(k1.serial)["machines"]
    assert len(machines) == 4  # known, fresh x2 SKUs, the third
    assert store.activate_mak_many([], CATALOG, now=NOW) == []


def _queue_behind_a_held_turn(store: Store, calls: list[object]) -> list[object]:
    """Run each call on its own thread while the store's MAK turn is held, so they all
    queue; release the turn once every one is queued; return each call's outcome."""
    outcomes: list[object] = [None] * len(calls)

    def one(i: int) -> None:
        try:
            outcomes[i] = calls[i]()  # type: ignore[operator]
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    with store._mak_turn:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(store._mak_queue) < len(calls) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(store._mak_queue) == len(calls)
    for t in threads:
        t.join(60)
    return outcomes


def test_direct_activations_waiting_together_share_one_commit(store: Store) -> None:
    key = new_key(store, KeyKind.MAK, "desktop", 3)
    known = mak_req(key)
    store.activate_mak(known, key, CATALOG, now=NOW)
    stranger = ProductKey.generate(KeyKind.MAK, secrets.token_bytes(12))
    fresh = [mak_req(key) for _ in range(3)]
    commits: list[int] = []
    sa.event.listen(store.engine, "commit", lambda _conn: commits.append(1))
    calls = [
        lambda: store.activate_mak(known, key, CATALOG, now=NOW),  # repeat
        lambda: store.activate_mak(fresh[0], key, CATALOG, now=NOW),
        lambda: store.activate_mak(fresh[0], key, CATALOG, now=NOW),  # the same machine again
        lambda: store.activate_mak(mak_req(key, sku=SERVER.id), key, CATALOG, now=NOW),
        lambda: store.activate_mak(mak_req(stranger), stranger, CATALOG, now=NOW),
        lambda: store.activate_mak(fresh[1], key, CATALOG, now=NOW),  # the last one left
        lambda: store.activate_mak(fresh[2], key, CATALOG, now=NOW),
    ]
    outcomes = _queue_behind_a_held_turn(store, calls)
    assert len(commits) == 1  # one transaction answered all seven
    names = [type(o).__name__ if isinstance(o, Exception) else o[1].name for o in outcomes]  # type: ignore[index]
    # Decided one by one in the order they queued (unknown here), each exactly:
    assert names.count("NEW_MACHINE") == 2 and names.count("ExhaustedKey") == 1
    assert names[0] == "REPEAT" and "NEW_MACHINE" in names[1:3] and "REPEAT" in names[1:3]
    assert names[3] == "SkuNotCovered" and names[4] == "UnknownKeyError"
    rec = store.get_key(key.serial)
    assert rec is not None and rec.used == 3
    assert len(store.key_details(key.serial)["machines"]) == 3


def test_a_failed_shared_commit_fails_every_request_in_it(store: Store) -> None:
    key = new_key(store, KeyKind.MAK, "desktop", 10)
    with store.engine.begin() as conn:  # the machines' table is gone: the transaction fails
        conn.execute(sa.text("DROP TABLE mak_activations"))
    reqs = [mak_req(key) for _ in range(5)]
    outcomes = _queue_behind_a_held_turn(
        store, [lambda r=r: store.activate_mak(r, key, CATALOG, now=NOW) for r in reqs]
    )
    assert all(isinstance(o, StoreError) for o in outcomes)
    assert len({id(o) for o in outcomes}) == 5  # each thread raised its own copy
    assert all("mak_activations" in str(o) for o in outcomes)
    rec = store.get_key(key.serial)
    assert rec is not None and rec.used == 0
