"""``dns-state.json``: what this host published in each domain, and the last outcome.

The publisher writes it after every attempt; ``status`` and the next publish or
unpublish read it. A failure to write it is not fatal (the next success rewrites
it); a damaged file reads as empty.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from volact.errors import ConfigurationError
from volact.files import write_atomic
from volact.host.dns.outcomes import Outcome
from volact.host.dns.plans import Published
from volact.host.dns.schedule import Backoff, DomainState

#: The last outcome per domain, written by the publisher, read by ``status``.
STATE_FILE = "dns-state.json"


def read_state_file(home: Path) -> dict[str, Any]:
    try:
        obj = json.loads((Path(home) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def load_state(home: Path) -> dict[str, dict[str, Any]]:
    domains = read_state_file(home).get("domains")
    if not isinstance(domains, dict):
        return {}
    return {k: v for k, v in domains.items() if isinstance(k, str) and isinstance(v, dict)}


def load_published(home: Path, domain: str) -> Published:
    """What ``dns-state.json`` says this host last published into ``domain``."""
    whole = read_state_file(home)
    entry = load_state(home).get(domain, {})
    fqdn = whole.get("fqdn")
    return Published.from_state(entry, zone=domain, fqdn=fqdn if isinstance(fqdn, str) else None)


def save_state(
    home: Path,
    domain: str,
    state: DomainState,
    *,
    published: Published | None,
    action: str,
    fqdn: str,
) -> None:
    """Merge one domain's state into ``dns-state.json``; a failure here is not fatal.

    After a success, ``published`` is what the domain now holds of this host: the
    exact rdatas, so that the next publish or an ``unpublish`` deletes those and
    nothing else, even after the FQDN, the addresses or the service have changed.
    """
    states = load_state(home)
    entry = {**states.get(domain, {}), **state.to_json()}
    if published is not None:
        entry["published"] = action == "publish"
        entry.update(published.to_json())
        entry.pop("addresses", None)  # the older format's record of A/AAAA
    states[domain] = entry
    data = json.dumps({"fqdn": fqdn, "domains": states}, indent=2, sort_keys=True) + "\n"
    with contextlib.suppress(ConfigurationError):
        write_atomic(Path(home) / STATE_FILE, data.encode())


def published_after(outcome: Outcome, action: str, fqdn: str) -> Published | None:
    """What to record after ``outcome``: None after a failure (the zone is as it was)."""
    if not outcome.ok:
        return None
    if action == "publish":
        return Published(fqdn, outcome.records)
    return Published(None, outcome.records)  # what it could not remove, if anything


def record_outcome(
    home: Path,
    outcome: Outcome,
    now: int,
    *,
    action: str,
    backoff: Backoff,
    fqdn: str,
) -> None:
    old = load_state(home).get(outcome.domain, {})
    prior = old.get("failures", 0)
    failures = 0 if outcome.ok else (prior if isinstance(prior, int) else 0) + 1
    last_ok = old.get("last_ok")
    state = DomainState(
        outcome.domain,
        next_attempt=now + backoff.delay(failures),
        failures=failures,
        last_attempt=now,
        last_ok=now if outcome.ok else (last_ok if isinstance(last_ok, int) else None),
        last_error=None if outcome.ok else outcome.detail,
    )
    published = published_after(outcome, action, fqdn)
    save_state(home, outcome.domain, state, published=published, action=action, fqdn=fqdn)
