"""The host's network adapter: asyncio TCP server around :class:`HostCore`.

One connection carries one exchange: read one request frame (bounded in size and
time), let the core decide, send the reply, close. A reply that grants activation
is written only after its record is committed to the store; the commits of
concurrent requests are grouped into one transaction (:class:`GroupCommitter`).
Refusals are answered at once and recorded in the same batches. Garbage, oversized
or slow requests close their own connection and nothing else. Connection slots are
handed out by :class:`~volact.host.admission.Slots`: one address, and one IPv4 /24
or IPv6 /64, may hold only so many; a full host admits a newcomer by closing the
oldest idle connection of the network holding the most; and under pressure idle
connections get a much shorter read timeout (:data:`PRESSURE_READ_TIMEOUT`).

No policy lives here: counting, thresholds and tickets are the core's. Uses
uvloop when it is importable. SIGTERM/SIGINT stop accepting, let in-flight
exchanges finish, flush the store and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volact.addresses import format_hostport
from volact.errors import ConfigurationError, DecodeError, VolactError
from volact.files import write_atomic
from volact.host.activation import load_core
from volact.host.admission import Slots
from volact.host.client_index import COUNT_WINDOW, Touch
from volact.host.config import SERVE_FILE, HostConfig, parse_listen
from volact.host.dns.publisher import publish_loop
from volact.host.home import load_config
from volact.host.malformed import EventRow, MalformedLog
from volact.host.policy import HostCore, RequestRecord
from volact.host.rebalance_file import REBALANCE_FILE, FileWatch, load_rebalance
from volact.host.reload import RELOAD_SIGNAL, Reloader
from volact.host.store import HostStore
from volact.wire import MAX_REQUEST_FRAME, FrameReader, Result, encode_reply

_OK = int(Result.OK)
#: Done callbacks get True when the batch is durable, False when the write failed.
_Done = Callable[[bool], None]
#: Grants that may be committed before the group commit's timer, when every open
#: connection waits for them (see HostServer.exchange). A batch costs a few hundred
#: µs of CPU whatever its size: from 32 grants on, that is under a tenth of their cost.
EARLY_BATCH = 32
#: The read timeout of idle connections while three quarters of the slots are taken
#: (seconds): a legitimate client sends its request within milliseconds.
PRESSURE_READ_TIMEOUT = 1.0


class GroupCommitter:
    """Group commit: the requests of up to 15 ms go to the store in one transaction.

    Records wait in a list; at most ``interval`` seconds after the first one
    arrives (or as soon as ``max_batch`` wait), the whole list is written and
    committed (WAL, ``synchronous=FULL``: one fsync per batch), and only then are
    the waiting grants answered. A batch costs a few hundred µs of CPU whatever
    its size (the transaction, its pages, the fsync), so larger batches cost less
    per exchange; the server also flushes early when waiting longer cannot grow
    the batch (:meth:`HostServer.exchange`). It runs
    on the loop thread: measured here, an fsync costs ~250 µs of wall time, a
    small price once per batch, and it avoids handing every batch to a thread
    (which cost more CPU than the commit itself).

    Whatever goes wrong in a write, every waiter is answered (False: the grant
    becomes BUSY) and ``on_failure`` gets the count changes of the lost records,
    so that the in-memory count keeps matching the store.
    """

    def __init__(
        self,
        store: HostStore,
        loop: asyncio.AbstractEventLoop,
        interval: float = 0.015,
        on_failure: Callable[[list[Touch]], None] | None = None,
        max_batch: int = 1000,
    ) -> None:
        self._store = store
        self._loop = loop
        self.interval = interval
        self.max_batch = max_batch
        self._on_failure = on_failure
        self._records: list[RequestRecord] = []
        self._waiters: list[_Done] = []
        self._touched: list[Touch] = []
        self._events: list[tuple[int, str, str]] = []
        self._malformed: list[EventRow] = []
        self._malformed_n = 0
        self._timer: asyncio.TimerHandle | None = None
        self.batches = 0
        self.failures = 0

    def add(
        self, record: RequestRecord, done: _Done | None = None, touched: Touch | None = None
    ) -> None:
        """A request to persist; ``done`` waits for its commit, ``touched`` is undone on failure."""
        self._records.append(record)
        if done is not None:
            self._waiters.append(done)
        if touched is not None:
            self._touched.append(touched)
        if self._timer is None:
            self._timer = self._loop.call_later(self.interval, self.flush)
        elif len(self._records) >= self.max_batch:
            self.flush()

    @property
    def waiting(self) -> int:
        """Grants waiting for the next commit."""
        return len(self._waiters)

    def add_event(self, now: int, kind: str, message: str) -> None:
        self._events.append((now, kind, message))
        if self._timer is None:
            self._timer = self._loop.call_later(self.interval, self.flush)

    def add_malformed(self, rows: Sequence[EventRow], connections: int) -> None:
        """``connections`` more malformed connections (running totals) and event rows to write."""
        self._malformed.extend(rows)
        self._malformed_n += connections
        if self._timer is None and (rows or connections):
            self._timer = self._loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        """Write and commit everything pending; answer the grants waiting on it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not (self._records or self._events or self._malformed or self._malformed_n):
            return
        records, waiters, touched = self._records, self._waiters, self._touched
        events, malformed, malformed_n = self._events, self._malformed, self._malformed_n
        self._records, self._waiters, self._touched = [], [], []
        self._events, self._malformed, self._malformed_n = [], [], 0
        ok = False
        try:
            self._store.write_batch(records, events, malformed, malformed_count=malformed_n)
            ok = True
        except Exception as exc:  # any failure: the grants become BUSY, never hang
            self.failures += 1
            _warn(f"the store failed, {len(waiters)} grants refused with BUSY: {exc}")
        finally:
            self.batches += 1
            if not ok and touched and self._on_failure is not None:
                try:
                    self._on_failure(touched)
                except Exception as exc:  # pragma: no cover - the core's undo does not raise
                    _warn(f"cannot take the lost requests out of the count: {exc}")
            _notify(waiters, ok)

    def close(self) -> None:
        self.flush()


def _notify(waiters: list[_Done], ok: bool) -> None:
    for w in waiters:
        try:
            w(ok)
        except Exception as exc:  # one broken connection must not starve the others
            _warn(f"cannot answer a client: {exc}")


def _warn(message: str) -> None:
    sys.stderr.write(f"volact host: {message}\n")


@dataclass
class ServerStats:
    """Counters kept in memory while serving (for logs and tests)."""

    connections: int = 0  #: connections accepted
    active: int = 0  #: connections open now
    #: connections closed at once: every slot busy, or the address's or network's share taken
    refused_busy: int = 0
    evicted: int = 0  #: idle connections closed to make room for a newcomer
    malformed: int = 0  #: connections closed for bad input
    timeouts: int = 0  #: connections closed for sending too slowly
    replies: int = 0  #: replies sent
    moves_told: int = 0  #: grants whose ticket asked the client to move (rebalance)


class HostProtocol(asyncio.Protocol):
    """One connection: one request frame in, one reply frame out."""

    __slots__ = (
        "_done", "_frames", "_peer", "_server", "_started", "_transport",
    )

    def __init__(self, server: HostServer) -> None:
        self._server = server
        #: made only when a request arrives in pieces (see data_received)
        self._frames: FrameReader | None = None
        self._done = False
        self._transport: asyncio.Transport | None = None
        self._started = 0.0
        self._peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = transport  # type: ignore[assignment]
        s = self._server
        s.stats.connections += 1
        if s.stopping:
            self._refuse()
            return
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else ""
        self._started = s.loop.time()
        evict = s.slots.admit(self, self._peer, self._started)
        if evict is None:  # every slot is busy, or this address/network has its share
            self._refuse()
            return
        for victim in evict:
            victim._evicted()
        s.stats.active += 1
        s.in_flight.add(self)
        # Read timeouts are enforced by one sweeper for all connections
        # (HostServer.sweep), not by a timer per connection.

    def _refuse(self) -> None:
        assert self._transport is not None
        self._server.stats.refused_busy += 1
        self._done = True
        self._transport.abort()

    def _evicted(self) -> None:
        """Closed for a newcomer while idle (:class:`Slots` already took back the slot)."""
        s = self._server
        s.stats.evicted += 1
        self._done = True
        if self in s.in_flight:
            s.in_flight.discard(self)
            s.stats.active -= 1
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        s = self._server
        if self in s.in_flight:
            s.in_flight.discard(self)
            s.stats.active -= 1
            s.slots.release(self)
            if s.stopping and not s.in_flight:
                s.drained.set()

    def timed_out(self) -> None:
        if not self._done and self._transport is not None:
            s = self._server
            s.stats.timeouts += 1
            self._done = True
            timeout = s.config.read_timeout
            if s.slots.under_pressure:
                timeout = min(timeout, PRESSURE_READ_TIMEOUT)
            s.malformed(self._peer, f"no whole request within {timeout:g} s")
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        reader = self._frames
        if reader is None:
            if FrameReader.is_one_frame(data, MAX_REQUEST_FRAME):  # the usual case
                self._done = True
                s = self._server
                s.slots.busy(self)
                s.exchange(self, data)
                return
            reader = self._frames = FrameReader(MAX_REQUEST_FRAME, peer="client")
        try:
            frames = reader.feed(data)
        except DecodeError as exc:
            self._bad(str(exc))
            return
        if not frames:
            return
        self._done = True
        self._server.slots.busy(self)
        if len(frames) > 1 or reader.buffered:
            self._bad("data after the request frame")
            return
        self._server.exchange(self, frames[0])

    def eof_received(self) -> bool | None:
        if not self._done:
            self._bad("the connection closed before a whole request arrived")
            return None
        # A whole request, then a half-close (shutdown(SHUT_WR)): keep our side open
        # for the reply, which for a grant waits for the group commit. The sweeper
        # still bounds how long the connection may stay.
        return True

    def _bad(self, message: str) -> None:
        self._done = True
        s = self._server
        s.stats.malformed += 1
        s.malformed(self._peer, message)
        if self._transport is not None:
            self._transport.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def peer(self) -> str:
        """The client's address (as text, without the port)."""
        return self._peer

    def send(self, frame: bytes) -> None:
        t = self._transport
        if t is not None and not t.is_closing():
            t.write(frame)
            t.close()
            self._server.stats.replies += 1


class HostServer:
    """The listening host: sockets, the core, the committer and shutdown."""

    def __init__(
        self,
        home: Path,
        core: HostCore,
        store: HostStore,
        config: HostConfig,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], int],
    ) -> None:
        self.home = home
        #: the host's time, Unix seconds (``--clock-offset`` is applied by the caller)
        self.clock = clock
        self.core = core
        self.store = store
        self.config = config
        self.loop = loop
        self.stats = ServerStats()
        self.committer = GroupCommitter(store, loop, on_failure=core.forget)
        self.malformed_log = MalformedLog()
        self.in_flight: set[HostProtocol] = set()
        #: who holds the connection slots
        self.slots: Slots[HostProtocol] = Slots(
            config.max_connections,
            config.max_connections_per_address,
            config.max_connections_per_network,
        )
        self.stopping = False
        self.drained = asyncio.Event()
        self.servers: list[asyncio.AbstractServer] = []
        self.addresses: list[str] = []
        #: ``rebalance.json``, looked at from the sweep loop (see :meth:`reload_settings`)
        self.rebalance_watch = FileWatch(home / REBALANCE_FILE)

    def reconfigure(self, config: HostConfig) -> str:
        """Take new settings while serving (SIGHUP); say what changed.

        Intervals, VM policy, read timeout and FQDN apply to the next exchange; the
        sockets, connection slots and count caps stay as started
        (:data:`volact.host.reload.RESTART_SETTINGS`, which ``host set`` reports).
        """
        if config.host_id != self.config.host_id:
            raise ConfigurationError("host.json now names another host id; restart the host")
        old, new = self.config.to_json(), config.to_json()
        changed = sorted(k for k in new if old.get(k) != new.get(k))
        self.config = config
        self.core.config = config
        return ("changed " + ", ".join(changed)) if changed else "unchanged"

    def now(self) -> int:
        """The host's idea of the time (the clock it was given), Unix seconds."""
        return self.clock()

    def malformed(self, address: str, message: str) -> None:
        """A connection closed for bad input: counted always, logged at most once a minute."""
        rows = self.malformed_log.add(self.now(), address, message)
        self.committer.add_malformed(rows, 1)

    def exchange(self, conn: HostProtocol, frame: bytes) -> None:
        try:
            reply, rec, touched = self.core.decide_frame(
                frame, now=self.clock(), address=conn.peer()
            )
        except DecodeError as exc:
            conn._bad(str(exc))
            return
        if rec is None:
            conn.send(reply)
        elif rec.result == _OK:  # a grant: answered once its record is durable
            if rec.moved:
                self.stats.moves_told += 1

            def done(ok: bool) -> None:
                # The refusal is built only when a commit fails: grants pay nothing for it.
                conn.send(reply if ok else self._busy_frame(rec))

            c = self.committer
            c.add(rec, done, touched)
            # Every open connection waits for this commit: no request can join the
            # batch before the replies go out (a closed loop of clients), so waiting
            # for the timer would only add latency (and cap such a load's throughput
            # at connections / interval). Not below EARLY_BATCH: with fewer open
            # connections, requests arriving one by one wait for the timer and are
            # still committed in batches.
            waiting = c.waiting
            if waiting >= EARLY_BATCH and waiting >= self.stats.active:
                c.flush()
        else:
            conn.send(reply)
            self.committer.add(rec, None, touched)

    def _busy_frame(self, rec: RequestRecord) -> bytes:
        cfg = self.config
        return encode_reply(
            Result.BUSY, rec.host_count, 0, cfg.activation_interval, cfg.renewal_interval,
            cfg.host_id,
        )  # fmt: skip

    async def sweep(self) -> None:
        """Close connections that have not sent a whole request within the read timeout.

        While three quarters of the slots are taken, the timeout of connections that
        have not sent a whole request is :data:`PRESSURE_READ_TIMEOUT` at most. A
        connection that did send one but is still open two read timeouts after it
        connected (its reply is stuck) is aborted too. Also writes the summaries of
        the malformed-connection windows that have ended.
        """
        timeout = self.config.read_timeout
        while not self.stopping:
            period = min(1.0, timeout / 4)
            if self.slots.under_pressure:
                period = min(period, PRESSURE_READ_TIMEOUT / 4)
            await asyncio.sleep(period)
            self.sweep_once(self.loop.time())

    def sweep_once(self, loop_time: float) -> None:
        timeout = self.config.read_timeout
        idle_timeout = timeout
        if self.slots.under_pressure:
            idle_timeout = min(timeout, PRESSURE_READ_TIMEOUT)
        deadline = loop_time - idle_timeout
        stuck = loop_time - 2 * timeout
        for conn in [c for c in self.in_flight if c._started < deadline]:
            if not conn._done:
                conn.timed_out()
            elif conn._started < stuck:
                conn.abort()
        now = self.now()
        rows = self.malformed_log.due(now)
        if rows:
            self.committer.add_malformed(rows, 0)
        for when, kind, message in self.core.flood_events(now):
            self.committer.add_event(when, kind, message)
            _warn(message)
        self.reload_settings()

    def reload_settings(self, *, force: bool = False) -> None:
        """Pick up a changed ``rebalance.json`` (one ``stat`` a second; no restart).

        A setting that cannot be read keeps the one in force and says so in the
        events. When a general reload (SIGHUP or a watched settings file) exists,
        it should call this too.
        """
        if not (self.rebalance_watch.changed() or force):
            return
        try:
            rb = load_rebalance(self.home)
        except VolactError as exc:
            self.committer.add_event(self.now(), "rebalance_failed", f"setting kept: {exc}")
            return
        if rb == self.core.rebalance:
            return
        self.core.rebalance = rb
        if rb is None:
            message = "stopped: no client is asked to move"
        else:
            what = "drain: every client" if rb.draining else f"{rb.percent:g} % of clients"
            message = f"{what} asked to move at renewal (since {rb.since})"
        self.committer.add_event(self.now(), "rebalance_set", message)

    async def start(self, listen: Sequence[str]) -> None:
        for spec in listen or ("",):
            if spec == "":
                host: str | None = None
                port = self.config.port
            else:
                host, port = parse_listen(spec, self.config.port)
                if host in ("", "*", "0.0.0.0/::"):  # ":PORT": all interfaces, both families
                    host = None
            try:
                srv = await self.loop.create_server(
                    lambda: HostProtocol(self), host, port, backlog=4096, reuse_address=True
                )
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot listen on {spec or f'*:{port}'}: {exc.strerror or exc}"
                ) from exc
            self.servers.append(srv)
            for sock in srv.sockets:
                name = sock.getsockname()
                self.addresses.append(format_hostport(name[0], name[1]))

    async def stop(self, grace: float) -> None:
        """Stop accepting, finish in-flight exchanges (bounded), flush the store."""
        self.stopping = True
        for srv in self.servers:
            srv.close()
        if self.in_flight:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.drained.wait(), grace)
        # Let grants waiting on a commit be answered before the writer stops.
        now = self.now()
        self.committer.add_malformed(self.malformed_log.drain(now), 0)
        for when, kind, message in self.core.flood_events(now, final=True):
            self.committer.add_event(when, kind, message)
            _warn(message)
        self.committer.close()
        for conn in list(self.in_flight):
            if conn._transport is not None:
                conn._transport.abort()


def ports_of(addresses: Sequence[str]) -> list[int]:
    return sorted({int(a.rsplit(":", 1)[1]) for a in addresses})


async def serve_async(
    home: Path,
    listen: Sequence[str] = (),
    *,
    out: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    clock_offset: int = 0,
    metrics: str | None = None,
    bench: bool = False,
    console: str | None = None,
) -> ServerStats:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set); return the counters.

    ``clock_offset`` (seconds) makes the host act as if the time were that much
    later: demos and tests use it to let a simulated week pass. ``metrics``
    (``ADDR[:PORT]``) serves Prometheus metrics at ``/metrics`` there; ``console``
    (``ADDR[:PORT]``) the web console (:mod:`volact.host.console`, its own thread).

    ``bench`` serves for ``volact bench`` only: the same key, license, policy and
    durable commits, but into a scratch store (a folder in the home, same disk)
    that starts empty and is deleted on exit, and no DNS publishing. Simulated
    machines never reach the real count, so a bench cannot unlock activation.
    """
    loop = asyncio.get_running_loop()
    cfg = load_config(home)
    bench_dir: Path | None = None
    if bench:
        bench_dir = _scratch_store_dir(home)
    try:
        store = HostStore.open(home, exclusive=True, store_dir=bench_dir)
    except BaseException:
        if bench_dir is not None:
            shutil.rmtree(bench_dir, ignore_errors=True)
        raise

    def clock() -> int:
        return int(time.time()) + clock_offset

    try:
        now = clock()
        core = load_core(home, cfg, store.clients_to_count(now - COUNT_WINDOW), now=now)
        server = HostServer(home, core, store, cfg, loop, clock)
        server.reload_settings(force=True)
        # The count index can hold millions of objects that live as long as the
        # host: move them out of the collector's sight, and collect young objects
        # less often (each exchange allocates a few short-lived containers).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        try:
            await server.start(list(listen) or list(cfg.listen))
        except BaseException:
            server.committer.close()
            raise
        sweeper = loop.create_task(server.sweep())
        metrics_server: asyncio.Server | None = None
        metrics_address: str | None = None
        if metrics is not None:
            from volact.host.metrics import serve_metrics  # prometheus_client: only if asked

            m_host, m_port = parse_listen(metrics, 9188)
            try:
                metrics_server = await serve_metrics(server, m_host, m_port)
            except OSError as exc:
                server.committer.close()
                raise ConfigurationError(
                    f"cannot serve metrics on {metrics}: {exc.strerror or exc}"
                ) from exc
            name = metrics_server.sockets[0].getsockname()
            metrics_address = format_hostport(name[0], name[1])
        console_server = None
        if console is not None:
            from volact.host.console import Console

            try:
                console_server = Console(home, console, clock)
            except BaseException:
                if metrics_server is not None:
                    metrics_server.close()
                server.committer.close()
                raise
        stop = stop or asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        listening = ", ".join(server.addresses)
        server.committer.add_event(now, "serve_start", f"listening on {listening}")
        serve_file = home / SERVE_FILE
        write_atomic(
            serve_file,
            json.dumps(
                {"pid": os.getpid(), "addresses": server.addresses,
                 "ports": ports_of(server.addresses), "started_at": now,
                 "metrics": metrics_address, "bench": bench,
                 "console": console_server.address if console_server else None}
            )
            + "\n",
        )  # fmt: skip
        ports = ports_of(server.addresses)

        def record(kind: str, message: str) -> None:
            server.committer.add_event(server.now(), kind, message)

        def publishing(until: asyncio.Event) -> Coroutine[Any, Any, None]:
            if bench:
                return _no_publishing(until)
            return publish_loop(
                home, fqdn=server.config.fqdn, port=ports[0] if ports else cfg.port,
                addresses=server.addresses, record_event=record, stop=until,
            )  # fmt: skip

        dns_task = _Restartable(loop, publishing)
        # SIGHUP: settings reach this process without a restart (volact.host.reload).
        reloader = Reloader(record)
        reloader.add("settings", lambda: server.reconfigure(load_config(home)))
        reloader.add("dns", dns_task.restart)
        reloader.install(loop)
        state = "activated" if core.activated else "NOT ACTIVATED (clients will be refused)"
        if bench:
            state += "; BENCH MODE: scratch store, nothing is kept, DNS not published"
        (out or _print)(
            f"volact host {cfg.host_id.hex()} listening on {', '.join(server.addresses)} "
            f"({state}; count {core.count(now)}; pid {os.getpid()})"
        )
        await stop.wait()
        server.committer.add_event(server.now(), "serve_stop", "stopping on request")
        if metrics_server is not None:
            metrics_server.close()
        if console_server is not None:
            await loop.run_in_executor(None, console_server.close)
        await server.stop(grace=cfg.read_timeout + 1.0)
        sweeper.cancel()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(RELOAD_SIGNAL)
        await dns_task.close(5.0)
        with contextlib.suppress(OSError):
            serve_file.unlink()
        return server.stats
    finally:
        store.close()
        if bench_dir is not None:
            shutil.rmtree(bench_dir, ignore_errors=True)


#: Prefix of a bench-mode host's scratch store folder in the home.
BENCH_DIR_PREFIX = "bench-store-"


def _scratch_store_dir(home: Path) -> Path:
    """A new empty folder for a bench-mode store; older ones (a killed bench) go."""
    for old in home.glob(BENCH_DIR_PREFIX + "*"):
        if not _owner_alive(old):  # else another bench host runs; the home lock refuses us
            shutil.rmtree(old, ignore_errors=True)
    try:
        path = Path(tempfile.mkdtemp(prefix=BENCH_DIR_PREFIX, dir=home))
        (path / ".pid").write_text(str(os.getpid()))
    except OSError as exc:
        raise ConfigurationError(f"cannot create a bench store in {home}: {exc.strerror}") from exc
    return path


def _owner_alive(folder: Path) -> bool:
    try:
        os.kill(int((folder / ".pid").read_text()), 0)
    except PermissionError:
        return True
    except (OSError, ValueError):
        return False
    return True


class _Restartable:
    """A background task (DNS publishing) that a reload stops and starts again."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        start: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
    ) -> None:
        self._loop, self._start = loop, start
        self._stop = asyncio.Event()
        self._tasks = [loop.create_task(start(self._stop))]

    def restart(self) -> str:
        self._stop.set()  # the old loop ends at its next check; a publish in flight finishes
        self._tasks = [t for t in self._tasks if not t.done()]
        self._stop = asyncio.Event()
        self._tasks.append(self._loop.create_task(self._start(self._stop)))
        return "publishing restarted with the saved settings"

    async def close(self, timeout: float) -> None:
        self._stop.set()
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), timeout)


async def _no_publishing(stop: asyncio.Event) -> None:
    """A bench-mode host never publishes itself: clients must not find it."""
    await stop.wait()


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def serve(
    home: Path,
    listen: Sequence[str] = (),
    clock_offset: int = 0,
    metrics: str | None = None,
    bench: bool = False,
    console: str | None = None,
) -> ServerStats:
    """Run the host in this process until a signal stops it."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        try:
            return runner.run(
                serve_async(
                    home, listen, clock_offset=clock_offset, metrics=metrics,
                    bench=bench, console=console,
                )
            )
        except VolactError:
            raise
        except OSError as exc:
            raise ConfigurationError(f"the host cannot serve: {exc}") from exc
