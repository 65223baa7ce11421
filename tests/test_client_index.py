"""The host's count (:class:`ClientIndex`) against a plain reference model, and its loading.

The index keeps machines in two places (a dict, and flat arrays for the machines
loaded from the store and not touched since) with a lazily refreshed heap; the
model is a dict CMID → (last seen, VM) that expires by scanning. Random
sequences of touches, clock moves (backwards too), counts, lookups, failed
batches taken back and a cap must give the same answers from both (issue 16).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from volact.errors import CountFull, StoreError
from volact.host import store as store_module
from volact.host.client_index import ClientColumns, ClientIndex, Touch
from volact.host.policy import RequestRecord
from volact.host.store import HostStore
from volact.testing.hosts import make_host_home

WINDOW = 100  # the loaded machines' heap entries come in steps of 3
T0 = 1_000

# CMIDs that share their first 8 bytes (the binary search's second half), a
# different first byte, and two of another length (kept in the dict).
CMIDS = [bytes([a]) * 8 + bytes([b]) * 8 for a in (0, 7, 255) for b in (0, 1, 2, 9, 200)] + [
    b"\x05" * 15,
    b"\x07" * 17,
]
cmids = st.sampled_from(CMIDS)


class Model:
    """The count as the brief defines it, with nothing clever in it."""

    def __init__(self, rows: dict[bytes, tuple[int, bool]], now: int, capacity: int) -> None:
        self.seen = {c: tv for c, tv in rows.items() if tv[0] > now - WINDOW}
        self.capacity = capacity

    def expire(self, now: int) -> None:
        self.seen = {c: tv for c, tv in self.seen.items() if tv[0] > now - WINDOW}

    def count(self, now: int, count_vms: bool) -> int:
        self.expire(now)
        return sum(1 for _, vm in self.seen.values() if count_vms or not vm)

    def touch(self, cmid: bytes, now: int, vm: bool) -> Touch:
        old = self.seen.get(cmid)
        if old is None and len(self.seen) >= self.capacity:
            raise CountFull("full")
        self.seen[cmid] = (now if old is None else max(now, old[0]), vm)
        return (cmid, None, False) if old is None else (cmid, old[0], old[1])

    def undo(self, touches: list[Touch]) -> None:
        for cmid, old, was_vm in reversed(touches):
            if old is None:
                self.seen.pop(cmid, None)
            else:
                self.seen[cmid] = (old, was_vm)


class IndexAgainstModel(RuleBasedStateMachine):
    index: ClientIndex
    model: Model

    @initialize(
        rows=st.dictionaries(
            cmids,
            st.tuples(
                # many near the cutoff, to leave during the run a second at a time
                st.integers(T0 - WINDOW - 3, T0 - WINDOW + 12) | st.integers(T0 - 2 * WINDOW, T0),
                st.booleans(),
            ),
            max_size=17,
        ),
        capacity=st.integers(1, 20),
    )
    def load(self, rows: dict[bytes, tuple[int, bool]], capacity: int) -> None:
        self.now = T0
        self.index = ClientIndex.from_rows(
            [(c, t, vm) for c, (t, vm) in rows.items()], now=T0, window=WINDOW
        )
        self.index.capacity = capacity  # as HostCore sets it from the configuration
        self.model = Model(rows, T0, capacity)
        self.batch: list[Touch] = []

    @rule(dt=st.integers(-1, 2) | st.integers(-WINDOW, 2 * WINDOW))
    def clock_moves(self, dt: int) -> None:
        self.now += dt

    @rule(cmid=cmids, vm=st.booleans())
    def touch(self, cmid: bytes, vm: bool) -> None:
        assert self.index.can_add() == (len(self.model.seen) < self.model.capacity)
        try:
            expected = self.model.touch(cmid, self.now, vm)
        except CountFull:
            with pytest.raises(CountFull):
                self.index.touch(cmid, self.now, vm)
            return
        assert self.index.touch(cmid, self.now, vm) == expected
        self.batch.append(expected)

    @rule(count_vms=st.booleans())
    def count(self, count_vms: bool) -> None:
        assert self.index.count(self.now, count_vms=count_vms) == self.model.count(
            self.now, count_vms
        )

    @rule()
    def batch_committed(self) -> None:
        self.batch = []

    @precondition(lambda self: bool(self.batch))
    @rule()
    def batch_failed(self) -> None:
        self.index.undo(self.batch)
        self.model.undo(self.batch)
        self.batch = []

    @rule(cmid=cmids)
    def lookups(self, cmid: bytes) -> None:
        entry = self.model.seen.get(cmid)
        assert (cmid in self.index) == (entry is not None)
        assert self.index.last_seen(cmid) == (None if entry is None else entry[0])

    @invariant()
    def same_size(self) -> None:
        # Both keep a stale machine until the next expiry: the sizes match exactly.
        assert len(self.index) == len(self.model.seen)


TestIndexAgainstModel = IndexAgainstModel.TestCase
TestIndexAgainstModel.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)


def test_a_loaded_machine_moves_to_the_dict_on_its_first_touch_and_keeps_its_time() -> None:
    a, b = bytes(16), b"\x01" * 16
    index = ClientIndex.from_columns(ClientColumns(a + b, [2 * T0 + 1, 2 * (T0 - 10)]), now=T0)
    assert index.count(T0) == 2 and index.count(T0, count_vms=False) == 1
    assert index.touch(a, T0 - 5, False) == (a, T0, True)  # an older clock keeps the newer time
    assert index.last_seen(a) == T0 and index.count(T0, count_vms=False) == 2
    assert index.count(T0 + 30 * 86_400 - 10) == 1  # b left at its own time, a is still in
    assert index.count(T0 + 30 * 86_400) == 0


@pytest.mark.parametrize("window", [1, 31, 100, 30 * 86_400])
def test_loaded_machines_leave_the_count_each_at_its_own_second(window: int) -> None:
    # One machine last seen at each second of two windows, every third a VM; their
    # heap entries are made a step at a time (see ClientIndex._add_base_entries).
    n = 2 * min(window, 500)
    cmids = [uuid.UUID(int=i).bytes for i in range(n)]
    seen = [2 * (T0 - window + 1 + (i * 7919) % n) + (i % 3 == 0) for i in range(n)]
    index = ClientIndex.from_columns(ClientColumns(b"".join(cmids), seen), now=T0, window=window)
    times = sorted(s >> 1 for s in seen)
    for now in range(T0, T0 + n + 2):
        left = [s for s in seen if s >> 1 > now - window]
        assert index.count(now) == len(left), now
        assert index.count(now, count_vms=False) == sum(1 for s in left if not s & 1)
    assert index.count(times[-1] + window) == 0


def test_columns_are_checked() -> None:
    a, b = bytes(16), b"\x01" * 16
    with pytest.raises(ValueError, match="ascending"):
        ClientIndex.from_columns(ClientColumns(b + a, [2 * T0, 2 * T0]), now=T0)
    with pytest.raises(ValueError, match="ascending"):
        ClientIndex.from_columns(ClientColumns(a + a, [2 * T0, 2 * T0]), now=T0)
    with pytest.raises(ValueError, match="bytes of CMIDs"):
        ClientIndex.from_columns(ClientColumns(a + b[:15], [2 * T0, 2 * T0]), now=T0)
    with pytest.raises(ValueError, match="64-bit"):
        ClientIndex.from_columns(ClientColumns(a, [2**70]), now=T0)


# -- loading from the store ----------------------------------------------------------


def _record(cmid: bytes, t: int, vm: bool) -> RequestRecord:
    return RequestRecord(t, "192.0.2.1", cmid, bytes(16), "pc", vm, 1, 100, t, 0, 25, 0)


def _state(index: ClientIndex, cmids: list[bytes], now: int) -> list[object]:
    return [
        index.count(now),
        index.count(now, count_vms=False),
        [index.last_seen(c) for c in cmids],
        [index.count(now + dt) for dt in (86_400 * 29, 86_400 * 30, 86_400 * 31)],
    ]


def test_the_store_columns_give_the_same_count_as_the_rows(tmp_path: Path) -> None:
    home = tmp_path / "h"
    make_host_home(home)
    now = 1_800_000_000
    cmids = [os.urandom(16) for _ in range(300)] + [uuid.UUID(int=i).bytes for i in range(50)]
    with HostStore.open(home) as store:
        store.write_batch([_record(c, now - i * 9_000, i % 3 == 0) for i, c in enumerate(cmids)])
        since = now - 30 * 86_400
        columns = store.recent_client_columns(since)
        assert isinstance(columns, ClientColumns) and len(columns.seen) < len(cmids)
        rows = list(store.recent_clients(since))
        assert len(rows) == len(columns.seen)
        loaded = ClientIndex.from_columns(columns, now=now)
        assert _state(loaded, cmids, now) == _state(
            ClientIndex.from_rows(rows, now=now), cmids, now
        )
        # An index on last_contact would change a plain scan's order, not this one's.
        store._conn.execute("CREATE INDEX test_by_time ON clients (last_contact)")
        assert store.recent_client_columns(since) == columns


def test_without_the_primary_key_index_by_name_the_columns_come_from_an_ordered_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "h"
    make_host_home(home)
    now = 1_800_000_000
    with HostStore.open(home) as store:
        store.write_batch([_record(os.urandom(16), now - i, i % 2 == 0) for i in range(100)])
        store._conn.execute("CREATE INDEX test_by_time ON clients (last_contact)")
        columns = store.recent_client_columns(now - 1000)
        renamed = (
            "clients INDEXED BY no_such_name WHERE last_contact > ?",
            *store_module._CLIENTS_BY_CMID[1:],
        )
        monkeypatch.setattr(store_module, "_CLIENTS_BY_CMID", renamed)
        assert store.recent_client_columns(now - 1000) == columns
        assert ClientIndex.from_columns(columns, now=now).count(now, count_vms=False) == 50


def test_a_cmid_of_another_length_is_read_as_rows(tmp_path: Path) -> None:
    home = tmp_path / "h"
    make_host_home(home)
    now = 1_800_000_000
    with HostStore.open(home) as store:
        store.write_batch([_record(b"\x01" * 16, now, True)])
        store._conn.execute(  # no host writes one: a store edited by hand
            "INSERT INTO clients (cmid, sku, workstation, address, vm, first_contact, "
            "last_contact, last_result) VALUES (?, ?, 'x', 'x', 0, ?, ?, 0)",
            (b"\x02" * 15, bytes(16), now, now),
        )
        assert store.recent_client_columns(now - 10) is None
        clients = store.clients_to_count(now - 10)
        assert not isinstance(clients, ClientColumns)
        index = ClientIndex.from_rows(clients, now=now)
        assert index.count(now) == 2 and index.count(now, count_vms=False) == 1


def test_an_empty_store_gives_empty_columns(tmp_path: Path) -> None:
    home = tmp_path / "h"
    make_host_home(home)
    with HostStore.open(home) as store:
        assert store.clients_to_count(0) == ClientColumns(b"", [])


def test_the_store_read_error_is_a_store_error(tmp_path: Path) -> None:
    home = tmp_path / "h"
    make_host_home(home)
    with HostStore.open(home) as store:
        store._conn.execute("DROP TABLE clients")
        with pytest.raises(StoreError, match="cannot read the store") as err:
            store.recent_client_columns(0)
        assert isinstance(err.value.__cause__, sqlite3.Error)
