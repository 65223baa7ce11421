"""Runs the authority's HTTP API under uvicorn, with one or several worker processes.

The parent process takes the home's serving lock (one serve per home), checks
the home, the vendor key (and its passphrase) and the store, migrates the
schema, binds and listens on the socket, writes
``HOME/serve.json`` with the bound address and prints one readiness line; then
the workers (spawned processes, each building its own app from environment
variables via :func:`app_from_env`) accept on that shared socket. Workers are
stateless: everything durable is in the store, so several workers, or several
machines on one PostgreSQL, serve one authority. SIGTERM/SIGINT stop cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI

from volact.addresses import LISTEN, format_hostport, parse_hostport
from volact.authority.activation import Authority
from volact.authority.api import ApiConfig, create_app
from volact.authority.db import Store, redact_url
from volact.authority.guard import GuardedH11Protocol, Limits, log_config
from volact.authority.ratelimit import RateLimit
from volact.authority.vault import (
    SERVE_FILE,
    AuthorityHome,
    lock_serving,
    remove_serve_file,
    unlock_serving,
    write_file,
)
from volact.errors import AddressError, ConfigurationError, UsageError

if TYPE_CHECKING:
    import uvicorn

ENV_HOME = "VOLACT_AUTHORITY_HOME"
ENV_DATABASE = "VOLACT_AUTHORITY_DATABASE"
ENV_PASSPHRASE_FILE = "VOLACT_AUTHORITY_PASSPHRASE_FILE"
ENV_RATE = "VOLACT_AUTHORITY_RATE"
ENV_BURST = "VOLACT_AUTHORITY_BURST"

DEFAULT_RATE = 50.0
DEFAULT_BURST = 500
MAX_WORKERS = 64


@dataclass(frozen=True)
class ServeOptions:
    """How to run the service."""

    home: Path  #: the authority home
    host: str  #: address to bind
    port: int  #: port to bind (0 = any free port)
    database: str  #: SQLAlchemy URL of the store
    workers: int = 1  #: worker processes
    passphrase_file: Path | None = None  #: the vendor key's passphrase, if encrypted
    rate: float = DEFAULT_RATE  #: activation requests per second per key and per address
    burst: int = DEFAULT_BURST  #: burst of the rate limit
    log_level: str = "warning"  #: uvicorn's log level
    limits: Limits = field(default_factory=Limits)  #: body size, deadlines, connection cap

    @classmethod
    def from_cli(
        cls,
        *,
        home: Path,
        listen: str,
        database: str,
        workers: int,
        passphrase_file: Path | None,
        rate_limit: float | None,
        rate_burst: int | None,
        log_level: str,
        max_connections: int | None = None,
        header_timeout: float | None = None,
        body_timeout: float | None = None,
    ) -> ServeOptions:
        host, port = parse_listen(listen)
        if not 1 <= workers <= MAX_WORKERS:
            raise UsageError(f"--workers must be 1..{MAX_WORKERS}")
        rate = DEFAULT_RATE if rate_limit is None else rate_limit
        burst = DEFAULT_BURST if rate_burst is None else rate_burst
        if rate < 0 or burst < 1:
            raise UsageError("--rate-limit must be >= 0 and --rate-burst >= 1")
        d = Limits()
        if max_connections is not None and not 2 <= max_connections <= MAX_CONNECTIONS:
            raise UsageError(f"--max-connections must be 2..{MAX_CONNECTIONS}")
        for name, value in (("--header-timeout", header_timeout), ("--body-timeout", body_timeout)):
            if value is not None and not 0 < value <= 3600:
                raise UsageError(f"{name} takes seconds, more than 0 and at most 3600")
        limits = Limits(
            header_timeout=d.header_timeout if header_timeout is None else header_timeout,
            body_timeout=d.body_timeout if body_timeout is None else body_timeout,
            max_connections=default_max_connections() if max_connections is None
            else max_connections,
        )  # fmt: skip
        return cls(
            home.resolve(), host, port, database, workers,
            passphrase_file.resolve() if passphrase_file else None, rate, burst, log_level,
            limits,
        )  # fmt: skip

    def environ(self) -> dict[str, str]:
        env = {
            ENV_HOME: str(self.home),
            ENV_DATABASE: self.database,
            ENV_RATE: repr(self.rate),
            ENV_BURST: str(self.burst),
        }
        if self.passphrase_file is not None:
            env[ENV_PASSPHRASE_FILE] = str(self.passphrase_file)
        env.update(self.limits.environ())
        return env


#: Highest --max-connections (each connection is a file descriptor).
MAX_CONNECTIONS = 100_000


def default_max_connections() -> int:
    """1000, or fewer when the process may not open that many files (headroom kept for
    the listening socket, database connections and logs)."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1000
    return max(2, min(1000, soft - 100))


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` (``[v6]:PORT`` for IPv6) → (address, port); a usage error if not."""
    try:
        return parse_hostport(text, default_port=None, ports=LISTEN, what="--listen")
    except AddressError as exc:
        raise UsageError(
            f"{exc}; --listen takes ADDR:PORT, e.g. 127.0.0.1:8088 or [::1]:0"
        ) from None


def _load_authority(
    home_dir: Path, database: str, passphrase_file: Path | None, *, pool_size: int = 10
) -> Authority:
    home = AuthorityHome.open(home_dir)
    passphrase = None
    if passphrase_file is not None:
        try:
            passphrase = passphrase_file.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the passphrase file {passphrase_file}: {exc.strerror}"
            ) from exc
    key = home.signing_key(passphrase)
    return Authority(home, Store(database, pool_size=pool_size), key)


def app_from_env() -> FastAPI:
    """The app of one worker, configured by the parent through the environment."""
    home = os.environ.get(ENV_HOME)
    database = os.environ.get(ENV_DATABASE)
    if not home or not database:
        raise ConfigurationError(f"{ENV_HOME} and {ENV_DATABASE} must be set")
    pw = os.environ.get(ENV_PASSPHRASE_FILE)
    auth = _load_authority(Path(home), database, Path(pw) if pw else None)
    auth.store.check_schema()
    limit = RateLimit(
        float(os.environ.get(ENV_RATE, DEFAULT_RATE)),
        int(os.environ.get(ENV_BURST, DEFAULT_BURST)),
    )
    return create_app(ApiConfig(auth, rate_limit=limit, limits=Limits.from_environ()))


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); IPv6 when host is an IPv6 address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        # Listen now, before the workers start, so early clients queue instead of
        # being refused.
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def serve(opts: ServeOptions) -> int:
    """Run until SIGTERM/SIGINT; return the exit code.

    Holds the home's serving lock throughout, so a second serve on the same home
    is refused (naming the first one's pid) instead of taking over ``serve.json``.
    """
    AuthorityHome.open(opts.home)  # a clear error for a missing home, before the lock
    lock = lock_serving(opts.home)
    try:
        return _serve_locked(opts)
    finally:
        unlock_serving(lock)


def _serve_locked(opts: ServeOptions) -> int:
    import uvicorn

    # Fail here, in the foreground, on a bad home, key, passphrase or database.
    auth = _load_authority(opts.home, opts.database, opts.passphrase_file, pool_size=1)
    try:
        auth.store.migrate()
    finally:
        auth.store.close()
    os.environ.update(opts.environ())
    config = uvicorn.Config(
        "volact.authority.service:app_from_env",
        factory=True,
        host=opts.host,
        port=opts.port,
        workers=opts.workers,
        log_level=opts.log_level,
        log_config=log_config(),  # keys, key paths and tokens masked at every level
        access_log=False,
        lifespan="off",
        server_header=False,
        # Against slow and crowding clients (docs/authority.md, "Limits"): a deadline
        # for the headers and a connection cap that evicts the oldest idle connection
        # (GuardedH11Protocol), the body's deadline and size (guard.BodyLimit), and
        # uvicorn's keep-alive and header-size limits. Not uvicorn's
        # limit_concurrency: it counts connections too, so a crowd of idle ones
        # would turn every real request into a 503; the cap above evicts them instead.
        http=GuardedH11Protocol,
        timeout_keep_alive=int(opts.limits.keep_alive),
        h11_max_incomplete_event_size=16 * 1024,
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal
    # to the handler it found installed; ours turns that into a normal exit 0. It is
    # installed before the ready line, so a stop that comes before uvicorn's own
    # handlers (systemd stopping a unit that has just started) is a clean exit too.
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _bind_and_run(opts, config)
    except _Stop:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _bind_and_run(opts: ServeOptions, config: uvicorn.Config) -> None:
    from uvicorn import Server
    from uvicorn.supervisors import Multiprocess

    sock = bind(opts.host, opts.port)
    bound_host, bound_port = sock.getsockname()[:2]
    url = f"http://{format_hostport(bound_host, bound_port)}"
    info = {
        "url": url,
        "host": bound_host,
        "port": bound_port,
        "pid": os.getpid(),
        "workers": opts.workers,
        "database": redact_url(opts.database),
    }
    try:
        write_file(opts.home / SERVE_FILE, json.dumps(info, indent=2) + "\n")
        sys.stdout.write(
            f"volact authority listening on {url} "
            f"({opts.workers} worker{'s' if opts.workers > 1 else ''}, "
            f"store {redact_url(opts.database)})\n"
        )
        sys.stdout.flush()
        if opts.workers == 1:
            Server(config).run(sockets=[sock])
        else:
            Multiprocess(config, sockets=[sock]).run()
    finally:
        remove_serve_file(opts.home, os.getpid())
        sock.close()


class _Stop(Exception):
    """Raised by the signal handler once uvicorn has finished shutting down."""


def _stopped(signum: int, _frame: object) -> None:
    raise _Stop(signum)
