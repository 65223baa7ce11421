"""What ``volact host status`` shows of DNS publishing: settings and last outcomes.

Reads the host home's files; never includes the TSIG secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from volact.errors import ConfigurationError
from volact.host.dns.files import load_settings, read_key_file, service_label
from volact.host.dns.settings import PublishDomain
from volact.host.dns.state import load_state, read_state_file


def _fqdn_from_config(home: Path) -> str | None:
    try:
        from volact.host.home import load_config

        return load_config(home).fqdn
    except Exception:
        return None


def status(home: Path) -> dict[str, Any]:
    """DNS publishing settings and last outcome, for ``volact host status``.

    Never includes the TSIG secret; a key file that cannot be read shows its error.
    """
    home = Path(home)
    try:
        settings = load_settings(home)
    except ConfigurationError as exc:
        return {"enabled": False, "configured": False, "error": str(exc)}
    last = read_state_file(home).get("fqdn")
    fqdn = settings.fqdn or _fqdn_from_config(home) or (last if isinstance(last, str) else None)
    key: dict[str, Any] | None = None
    if settings.tsig_key_file:
        key = {"file": settings.tsig_key_file}
        try:
            k = read_key_file(settings.tsig_key_file)
            key.update(name=k.name, algorithm=k.algorithm)
        except ConfigurationError as exc:
            key["error"] = str(exc)
    states = load_state(home)
    domains: list[dict[str, Any]] = []
    targets: Iterable[PublishDomain] = ()
    with contextlib.suppress(ConfigurationError):
        targets = settings.targets(fqdn or "localhost")
    for t in targets:
        st = states.get(t.domain, {})
        domains.append(
            {
                **t.to_json(),
                "published": st.get("published"),
                "last_attempt": st.get("last_attempt"),
                "last_ok": st.get("last_ok"),
                "last_error": st.get("last_error"),
                "failures": st.get("failures", 0),
                "next_attempt": st.get("next_attempt"),
            }
        )
    return {
        "enabled": settings.enabled,
        "configured": settings.configured,
        "fqdn": fqdn,
        "label": service_label(home, settings),
        "servers": [str(s) for s in settings.servers],
        "tsig_key": key,
        "ttl": settings.ttl,
        "addresses": list(settings.addresses),
        "retry_initial": settings.retry_initial,
        "retry_max": settings.retry_max,
        "republish_interval": settings.republish_interval,
        "domains": domains,
    }
