"""Prometheus metrics for a serving host (``volact host serve --metrics ADDR:PORT``).

The numbers are read when a scraper asks, on the event loop's thread, from what
the server already keeps (its counters, the core's count, the store's running
totals), except the clients' validity figures (one scan of the clients table, made
at most every five minutes in a worker thread with its own read-only connection):
nothing is added to the activation path. The HTTP side is a tiny
asyncio responder for ``GET /metrics``; it carries no policy and must never
block the loop for long (reads are bounded in size and time).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from volact.errors import VolactError
from volact.host.admin import EXPIRY_WARNING_DAYS
from volact.host.policy import COUNT_WINDOW
from volact.host.rebalance import progress, windows
from volact.host.store import DAY, ValiditySummary

if TYPE_CHECKING:
    from volact.host.server import HostServer

#: A scraper must send its whole request (line and headers) within this many seconds.
READ_TIMEOUT = 5.0
MAX_HEADER_LINES = 100
#: Scrapers served at once; more are closed at once (the activation port shares the
#: process's file descriptors, so a flood here must not starve it).
MAX_SCRAPERS = 8
#: The clients' validity figures (expiring, expired) take one scan of the clients
#: table: a worker thread with its own read-only connection makes it at most this
#: often, and scrapes in between get the last figures and their time.
VALIDITY_REFRESH = 300.0
#: A first scrape waits this long for the first scan, then answers without it.
VALIDITY_FIRST_WAIT = 10.0
#: ``clients_expiring`` counts activations ending within this many days, as
#: ``volact host alerts`` does by default.
EXPIRY_DAYS = EXPIRY_WARNING_DAYS


class ValidityScan:
    """The last :class:`ValiditySummary` of the host's clients, refreshed off the loop."""

    def __init__(self, server: HostServer) -> None:
        self._server = server
        self.summary: ValiditySummary | None = None
        self.scanned_at = 0  #: Unix seconds of the scan behind ``summary``
        self._done_at = -VALIDITY_REFRESH  # monotonic
        self._running: asyncio.Future[None] | None = None

    async def refresh(self) -> None:
        """Start a scan if the figures are stale; wait for it only if there are none."""
        loop = asyncio.get_running_loop()
        if self._running is None and loop.time() - self._done_at >= VALIDITY_REFRESH:
            self._running = loop.run_in_executor(None, self._scan)
            self._running.add_done_callback(self._finished)
        if self.summary is None and self._running is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._running), VALIDITY_FIRST_WAIT)

    def _finished(self, fut: asyncio.Future[None]) -> None:
        self._running = None
        self._done_at = asyncio.get_running_loop().time()
        if not fut.cancelled():
            fut.exception()  # retrieved; _scan keeps the old figures on an error

    def _scan(self) -> None:
        now = self._server.now()
        try:
            with self._server.store.reader() as store:
                summary = store.validity_summary(
                    now=now, warn=now + EXPIRY_DAYS * DAY, counted_since=now - COUNT_WINDOW
                )
        except (VolactError, sqlite3.Error):
            return  # a scrape shows the previous figures (and their time) rather than none
        self.summary, self.scanned_at = summary, now


class HostCollector(Collector):
    """Turns the server's state into metric families at scrape time."""

    def __init__(self, server: HostServer, validity: ValidityScan | None = None) -> None:
        self._server = server
        self._validity = validity

    def collect(self) -> Iterator[Metric]:
        s = self._server
        now = s.now()
        yield GaugeMetricFamily(
            "volact_host_count", "Distinct machines counted in the last 30 days", s.core.count(now)
        )
        yield GaugeMetricFamily(
            "volact_host_activated", "1 when the host has a valid host license", s.core.activated
        )
        thresholds = GaugeMetricFamily(
            "volact_host_threshold", "Activation threshold of each product group", labels=["group"]
        )
        for group, n in s.core.thresholds().items():
            thresholds.add_metric([group], n)
        yield thresholds
        licensed = GaugeMetricFamily(
            "volact_host_group_licensed",
            "1 when the host license covers the product group, else 0", labels=["group"],
        )  # fmt: skip
        covered = set(s.core.license.groups) if s.core.license is not None else set()
        for group in s.core.thresholds():
            licensed.add_metric([group], 1 if group in covered else 0)
        yield licensed
        last = s.store.last_request_time()  # newest rows by primary key: a few index steps
        if last is not None:
            yield GaugeMetricFamily(
                "volact_host_last_request_timestamp_seconds",
                "Unix time of the newest client request", last,
            )  # fmt: skip
        requests = CounterMetricFamily(
            "volact_host_requests", "Requests since install, by result", labels=["result"]
        )
        for result, n in sorted(s.store.result_totals().items()):
            requests.add_metric([result], n)
        yield requests
        st = s.stats
        yield GaugeMetricFamily("volact_host_connections_open", "Connections open now", st.active)
        for name, value, text in (
            ("connections", st.connections, "Connections accepted since start"),
            ("replies", st.replies, "Replies sent since start"),
            ("malformed", st.malformed, "Connections closed for bad input since start"),
            ("timeouts", st.timeouts, "Connections closed for sending too slowly since start"),
            ("refused_busy", st.refused_busy, "Connections refused over the cap since start"),
            ("evicted", st.evicted, "Idle connections closed for a newcomer since start"),
            ("moves_told", st.moves_told, "Grants that asked the client to move since start"),
        ):
            yield CounterMetricFamily(f"volact_host_{name}", text, value)
        refused = CounterMetricFamily(
            "volact_host_new_machines_refused",
            "Machines new to the count refused since start (count full, or over the rate of "
            "new machines from one network)",
            labels=["reason"],
        )
        for reason, n in sorted(s.core.refused_new.items()):
            refused.add_metric([reason], n)
        yield refused
        yield GaugeMetricFamily(
            "volact_host_count_capacity", "Machines the count may hold", s.core.index.capacity
        )
        yield from _rebalance_metrics(s, now)
        yield from _dns_metrics(s)
        if self._validity is not None:
            yield from _validity_metrics(self._validity)


def _validity_metrics(scan: ValidityScan) -> Iterator[Metric]:
    v = scan.summary
    if v is None:
        return
    for name, value, text in (
        ("known", v.known, "Clients the host has ever answered (in its store)"),
        ("licensed", v.licensed, "Known clients whose activation is still valid"),
        ("expiring", v.expiring,
         f"Licensed clients whose activation ends within {EXPIRY_DAYS} days unless they renew"),
        ("expired", v.expired, "Known clients whose activation has expired"),
    ):  # fmt: skip
        yield GaugeMetricFamily(f"volact_host_clients_{name}", text, value)
    yield GaugeMetricFamily(
        "volact_host_clients_scan_timestamp_seconds",
        "Unix time of the clients-table scan behind the volact_host_clients_* figures",
        scan.scanned_at,
    )


def _dns_metrics(s: HostServer) -> Iterator[Metric]:
    """Consecutive failed publishing attempts per domain, from the home's small DNS
    state files (as ``host status`` shows them); nothing while publishing is off."""
    from volact.host.dns.status import status as dns_status

    failures = GaugeMetricFamily(
        "volact_host_dns_publish_failures",
        "Consecutive failed attempts to publish the host's SRV record into each domain "
        "(0: the last attempt worked); only while DNS publishing is enabled",
        labels=["domain"],
    )
    try:
        st = dns_status(s.home)
    except (VolactError, OSError, ValueError):
        st = {}
    if st.get("enabled"):
        for d in st.get("domains", []):
            failures.add_metric([str(d.get("domain"))], int(d.get("failures") or 0))
    yield failures


def _rebalance_metrics(s: HostServer, now: int) -> Iterator[Metric]:
    """Share and progress of a rebalance (one scan of the clients table, only while
    one is in force)."""
    rb = s.core.rebalance
    yield GaugeMetricFamily(
        "volact_host_rebalance_share",
        "Percent of clients asked to move (100: draining; 0: not rebalancing)",
        0 if rb is None else rb.percent,
    )
    if rb is None:
        return
    cfg = s.config
    active_since, left_before = windows(
        now, activation_interval=cfg.activation_interval, renewal_interval=cfg.renewal_interval
    )
    told, active, left = s.store.rebalance_figures(
        since=rb.since, active_since=active_since, left_before=left_before
    )
    prog = progress(told=told, active=active, left=left)
    for name, value, text in (
        ("told", prog.told, "Clients told to move since the rebalance began"),
        ("left", prog.left, "Clients told to move that have not come back"),
        ("remaining", prog.remaining, "Clients still renewing with this host"),
    ):
        yield GaugeMetricFamily(f"volact_host_rebalance_{name}", text, value)


async def serve_metrics(server: HostServer, host: str | None, port: int) -> asyncio.Server:
    """Listen for scrapers on ``host:port``; the caller closes the returned server."""
    registry = CollectorRegistry(auto_describe=False)
    validity = ValidityScan(server)
    registry.register(HostCollector(server, validity))

    open_now = 0

    async def read_request(reader: asyncio.StreamReader) -> bytes:
        line = await reader.readline()
        for _ in range(MAX_HEADER_LINES):
            if await reader.readline() in (b"\r\n", b"\n", b""):
                break
        return line

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now
        open_now += 1
        try:
            if open_now > MAX_SCRAPERS:
                return
            line = await asyncio.wait_for(read_request(reader), READ_TIMEOUT)
            parts = line.split()
            if len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] == b"/metrics":
                await validity.refresh()
                body = generate_latest(registry)
                head = f"HTTP/1.0 200 OK\r\nContent-Type: {CONTENT_TYPE_LATEST}\r\n"
            else:
                body = b"volact host: metrics are at /metrics\n"
                head = "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n"
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, OSError, ValueError):
            pass  # a scraper that stalls or hangs up gets nothing; the host carries on
        finally:
            open_now -= 1
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, reuse_address=True)
