"""The licensing report's summary and days-left histogram from one scan of the store."""

from __future__ import annotations

import tempfile
import uuid
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from volact.host.policy import RequestRecord
from volact.host.store import HostStore
from volact.testing.hosts import make_host_home

DAY = 86_400
NOW = 1_800_000_000
WARN = NOW + 14 * DAY
SINCE = NOW - 30 * DAY

# (valid_until relative to NOW, or None for never granted; last contact, days before NOW)
_clients = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(-400 * DAY, 400 * DAY)),
        st.integers(0, 60),
    ),
    max_size=40,
)


@settings(max_examples=30, deadline=None)
@given(_clients)
def test_one_scan_matches_the_clients_counted_one_by_one(
    clients: list[tuple[int | None, int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "host"
        make_host_home(home)
        records = []
        for i, (valid, days_ago) in enumerate(clients):
            seen = NOW - days_ago * DAY
            # A refusal never sets valid_until (0); a grant sets it.
            valid_until = 0 if valid is None else NOW + valid
            records.append(RequestRecord(
                seen, "192.0.2.1", uuid.UUID(int=i + 1).bytes, bytes(16), f"pc-{i}", False,
                1, 0, seen, 0 if valid_until else 1, 1, valid_until,
            ))  # fmt: skip
        with HostStore.open(home) as store:
            store.write_batch(records)
            summary, days = store.validity_and_days_left(now=NOW, warn=WARN, counted_since=SINCE)
            assert summary == store.validity_summary(now=NOW, warn=WARN, counted_since=SINCE)
    until = [r.valid_until for r in records]
    assert summary.known == len(records)
    assert summary.licensed == sum(u > NOW for u in until)
    assert summary.expiring == sum(NOW < u <= WARN for u in until)
    assert summary.expired == sum(0 < u <= NOW for u in until)
    assert summary.never == sum(u == 0 for u in until)
    assert summary.counted == sum(r.time > SINCE for r in records)
    assert days == sorted(Counter((u - NOW) // DAY for u in until if u > NOW).items())
