"""Publishing the host in DNS, over time: once now (the CLI), or at start and daily.

``run_once`` publishes or unpublishes in every domain once (``volact host dns
publish|unpublish``). ``publish_loop`` runs beside the activation server: it
publishes at start, every 24 h after a success, and with exponential backoff after
a failure. It must never raise into the server nor stop it serving, and never
print or log the TSIG secret. Policy (which records, when to retry) lives in the
sans-I/O modules of this package, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from volact.addresses import normalize_name
from volact.errors import ConfigurationError, UsageError, VolactError
from volact.host.dns.files import host_id_of, load_settings, service_label
from volact.host.dns.outcomes import Outcome
from volact.host.dns.schedule import Backoff, PublishSchedule
from volact.host.dns.servers import QUERY_TIMEOUT
from volact.host.dns.settings import DnsSettings
from volact.host.dns.state import load_published, published_after, record_outcome, save_state
from volact.host.rebalance_file import load_rebalance

# volact.host.dns.updates is imported where it is used: it brings dnspython, a
# quarter of a second of start-up that only publishing needs (not every `volact
# host` command, nor a host's time to its listening line).

EventSink = Callable[[str, str], None]


def _safe_event(record_event: EventSink, kind: str, message: str) -> None:
    # The event store failing must not stop publishing, nor the server.
    with contextlib.suppress(Exception):
        record_event(kind, message)


def _configured(home: Path, fqdn: str) -> tuple[DnsSettings, str, str, str]:
    """(settings, the name to publish, the service label, this host's id); a clear
    error when no DNS server is set."""
    settings = load_settings(home)
    if not settings.configured:
        raise ConfigurationError(
            "no DNS server is set; run `volact host dns --home DIR --server ADDR[:PORT]`"
        )
    return settings, settings.fqdn or fqdn, service_label(home, settings), host_id_of(home)


def run_once(
    home: Path,
    *,
    action: str,
    fqdn: str,
    port: int,
    addresses: Sequence[str],
    record_event: EventSink | None = None,
    now: Callable[[], float] = time.time,
    timeout: float = QUERY_TIMEOUT,
    take_over: bool = False,
) -> list[Outcome]:
    """Publish (``action="publish"``) or unpublish in every domain once, now.

    Used by ``volact host dns publish|unpublish``. Works whether or not publishing is
    enabled (enabling is about the service's schedule); needs a server to be set.
    Unpublishing removes what ``dns-state.json`` says was published (``addresses``
    are not used then: the service may listen elsewhere by now). ``take_over``
    publishes a name another host id owns (a replacement host), removing that
    host's marker and addresses; nothing else ever does.
    """
    from volact.host.dns.updates import publish_domain, unpublish_domain

    if action not in ("publish", "unpublish"):
        raise UsageError(f"action must be publish or unpublish, not {action!r}")
    settings, name, label, me = _configured(home, fqdn)
    backoff = Backoff.of(settings)
    outcomes: list[Outcome] = []
    for target in settings.targets(name):
        before = load_published(home, target.domain)
        if action == "publish":
            outcome = publish_domain(
                target,
                settings,
                label=label,
                fqdn=name,
                port=port,
                addresses=addresses,
                host_id=me,
                previous=before,
                take_over=take_over,
                timeout=timeout,
            )
        else:
            outcome = unpublish_domain(
                target,
                settings,
                label=label,
                fqdn=name,
                host_id=me,
                previous=before,
                timeout=timeout,
            )
        record_outcome(home, outcome, int(now()), action=action, backoff=backoff, fqdn=name)
        if record_event is not None:
            kind = f"dns_{action}_{'ok' if outcome.ok else 'failed'}"
            _safe_event(record_event, kind, outcome.message())
            if outcome.taken_from is not None:
                _safe_event(
                    record_event,
                    "dns_name_taken_over",
                    f"{outcome.domain}: {name} taken over from host {outcome.taken_from}",
                )
        outcomes.append(outcome)
    return outcomes


def withdraw_srv(
    home: Path,
    *,
    fqdn: str,
    record_event: EventSink | None = None,
    timeout: float = QUERY_TIMEOUT,
) -> list[Outcome]:
    """Remove this host's SRV record from every domain, keeping its A/AAAA (a drain).

    New clients stop finding the host; clients that cached its name still reach
    it and are asked, in their ticket, to move. ``dns-state.json`` is left as it
    is, so a later ``unpublish`` still removes the addresses published before,
    and a later ``publish`` puts the SRV back.
    """
    from volact.host.dns.updates import unpublish_domain

    settings, name, label, me = _configured(home, fqdn)
    outcomes: list[Outcome] = []
    for target in settings.targets(name):
        # No ``previous``: only this host's own SRV rdata (and marker) goes.
        outcome = unpublish_domain(
            target, settings, label=label, fqdn=name, host_id=me, timeout=timeout
        )
        if record_event is not None:
            kind = f"dns_withdraw_{'ok' if outcome.ok else 'failed'}"
            _safe_event(record_event, kind, outcome.message())
        outcomes.append(outcome)
    return outcomes


#: How often a draining host looks whether the drain has ended (to publish again).
DRAIN_CHECK_SECONDS = 30.0


def _draining(home: Path) -> bool:
    try:
        rb = load_rebalance(home)
    except VolactError:
        return False
    return rb is not None and rb.draining


async def publish_loop(
    home: Path,
    *,
    fqdn: str,
    port: int,
    addresses: Sequence[str],
    record_event: Callable[[str, str], None],
    stop: asyncio.Event,
    clock: Callable[[], float] = time.time,
    timeout: float = QUERY_TIMEOUT,
) -> None:
    """Publish at start and every 24 h until ``stop`` is set; never raises.

    ``record_event(kind, message)`` records a host event, e.g.
    ``("dns_publish_ok", "corp.example: SRV 0 0 1688 host1.corp.example")`` or
    ``("dns_publish_failed", "corp.example: refused (NOTAUTH/BADKEY): ...; retry in 60 s")``.
    Returns at once when DNS publishing is not configured or is disabled. Settings are
    read once, at start: a change takes effect when the service restarts.
    """
    from volact.host.dns.updates import publish_domain

    try:
        settings = load_settings(home)
        if not settings.enabled or not settings.configured:
            return
        name = settings.fqdn or normalize_name(fqdn, "FQDN")
        label = service_label(home, settings)
        me = host_id_of(home)
        targets = {t.domain: t for t in settings.targets(name)}
        if not targets:
            raise ConfigurationError(
                f"no domain to publish in: {name} has no parent domain; "
                "set one with `volact host dns --domain DOMAIN` or --publish-domain"
            )
    except Exception as exc:  # a bad dns.json must not stop the host serving
        _safe_event(record_event, "dns_publish_failed", f"settings: {exc}")
        return
    schedule = PublishSchedule(targets, Backoff.of(settings), int(clock()))
    listen = tuple(addresses)
    while not stop.is_set():
        if _draining(home):
            # A draining host does not publish itself: new clients must not find it
            # (`volact host rebalance --share 100` withdrew its records).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=DRAIN_CHECK_SECONDS)
            continue
        for domain in schedule.due(int(clock())):
            if stop.is_set():
                return
            outcome = await asyncio.to_thread(
                publish_domain,
                targets[domain],
                settings,
                label=label,
                fqdn=name,
                port=port,
                addresses=listen,
                host_id=me,
                previous=load_published(home, domain),
                timeout=timeout,
            )
            now = int(clock())
            state = schedule.record(outcome, now)
            save_state(
                home,
                domain,
                state,
                published=published_after(outcome, "publish", name),
                action="publish",
                fqdn=name,
            )
            if outcome.ok:
                _safe_event(record_event, "dns_publish_ok", outcome.message())
            else:
                retry = state.next_attempt - now
                _safe_event(
                    record_event, "dns_publish_failed", f"{outcome.message()}; retry in {retry} s"
                )
        wake = schedule.next_wakeup()
        delay = 3600.0 if wake is None else max(0.0, wake - clock())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
