"""Real servers on loopback: a BIND 9 primary for dynamic DNS and a PostgreSQL cluster.

Part of :mod:`volact.testing`: used by the test suite, the benchmarks and
``volact demo``, never by the product's runtime.

Each helper starts the real program from a fresh temporary directory, on a free
loopback port, and stops it by PID. Nothing here talks to anything but 127.0.0.1
and ::1, and every wait is bounded in time. When a program is not installed the
helpers raise :class:`ServiceMissing` with an install hint; the pytest fixtures
in ``tests/conftest.py`` turn that into a skip (or a failure when ``CI=true``).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update

from volact.testing.processes import (
    LOOPBACK_V4,
    LOOPBACK_V6,
    START_TIMEOUT,
    PortInUse,
    ServiceError,
    ServiceMissing,
    die_with_parent,
    find_program,
    free_port,
    ipv6_loopback_available,
    stop_process,
    tail_of,
)


class _Service:
    """Start/stop bookkeeping shared by the services: context manager + atexit."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the server and delete its directory."""
        raise NotImplementedError


#: Services started and not yet stopped, so that an interpreter exit stops them.
_running: set[_Service] = set()


@atexit.register
def _stop_all() -> None:
    for service in list(_running):
        with contextlib.suppress(Exception):
            service.close()


# -------------------------------------------------------------------------- BIND 9


def _absolute(zone: str) -> str:
    return zone if zone.endswith(".") else zone + "."


class Bind9(_Service):
    """A real BIND 9 ``named`` serving primary zones that accept TSIG-signed updates.

    The key may update only what a volact host publishes: the SRV RRset at
    ``<service_label>.<zone>`` and A/AAAA records anywhere in the zone. The zone
    data (including the update journals) lives in the temporary directory, so
    :meth:`stop` then :meth:`start` brings the server back with its data, on the
    same port.
    """

    tsig_algorithm = "hmac-sha256"
    address = LOOPBACK_V4

    def __init__(
        self,
        zones: Iterable[str] = ("corp.example.", "branch.example."),
        *,
        service_label: str = "_volact._tcp",
        tsig_key_name: str = "volact-test-key",
        records: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        """``records`` maps a zone to extra master-file lines for it (relative names)."""
        named = find_program("named")
        if named is None:
            raise ServiceMissing("BIND 9 (named)", "apt-get install bind9 bind9-dnsutils")
        self.named = named
        self.zones: tuple[str, ...] = tuple(_absolute(z) for z in zones)
        if not self.zones:
            raise ValueError("Bind9 needs at least one zone")
        self.service_label = service_label
        self.tsig_key_name = tsig_key_name
        self.tsig_secret_b64 = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        self._records = {_absolute(z): list(lines) for z, lines in (records or {}).items()}
        self.ipv6 = ipv6_loopback_available()
        self.port = 0
        self.directory: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- public helpers -----------------------------------------------------------

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every loopback address named listens on."""
        return (LOOPBACK_V4, LOOPBACK_V6) if self.ipv6 else (LOOPBACK_V4,)

    @property
    def log_path(self) -> Path:
        return self._dir / "named.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def tsig_key(self, secret_b64: str | None = None) -> dns.tsig.Key:
        """The dnspython key (pass ``secret_b64`` to forge a wrong one)."""
        return dns.tsig.Key(
            self.tsig_key_name, secret_b64 or self.tsig_secret_b64, self.tsig_algorithm
        )

    def write_key_file(self, path: str | os.PathLike[str]) -> Path:
        """Write the TSIG key in BIND's format (as ``tsig-keygen`` prints it)."""
        target = Path(path)
        target.write_text(
            f'key "{self.tsig_key_name}" {{\n'
            f"\talgorithm {self.tsig_algorithm};\n"
            f'\tsecret "{self.tsig_secret_b64}";\n'
            "};\n"
        )
        target.chmod(0o600)
        return target

    def update(self, zone: str, *, secret_b64: str | None = None) -> dns.update.Update:
        """A TSIG-signed dynamic update message for ``zone``, ready for ``send``."""
        return dns.update.Update(_absolute(zone), keyring=self.tsig_key(secret_b64))

    def send(
        self, message: dns.message.Message, *, address: str | None = None, timeout: float = 5.0
    ) -> dns.message.Message:
        """Send ``message`` over TCP and return the reply."""
        return dns.query.tcp(message, address or self.address, port=self.port, timeout=timeout)

    def query(
        self,
        name: str,
        rdtype: str | dns.rdatatype.RdataType = "SOA",
        *,
        address: str | None = None,
        tcp: bool = True,
        timeout: float = 5.0,
    ) -> dns.message.Message:
        """Ask this server directly (no recursion) and return the reply."""
        q = dns.message.make_query(name, rdtype)
        where = address or self.address
        if tcp:
            return dns.query.tcp(q, where, port=self.port, timeout=timeout)
        return dns.query.udp(q, where, port=self.port, timeout=timeout)

    # -- lifecycle ----------------------------------------------------------------

    @property
    def _dir(self) -> Path:
        if self.directory is None:
            raise ServiceError("Bind9 has not been started")
        return self.directory

    def start(self) -> None:
        """Start named; the first call creates the directory and picks the port."""
        if self.pid is not None:
            return
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="volact-bind-"))
            self._write_zones()
            last: ServiceError | None = None
            for _ in range(3):  # the free port may be taken before named binds it
                self.port = free_port(ipv6=self.ipv6)
                try:
                    self._launch()
                    return
                except PortInUse as exc:
                    last = exc
            assert last is not None
            raise last
        self._launch()

    def stop(self) -> None:
        """Stop named (SIGTERM, then SIGKILL after a bound); data stays for :meth:`start`."""
        proc, self._proc = self._proc, None
        stop_process(proc, signal.SIGTERM)
        if self.directory is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / "named.pid").unlink()
        _running.discard(self)

    def close(self) -> None:
        self.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def _write_zones(self) -> None:
        d = self._dir
        for zone in self.zones:
            origin = zone
            lines = [
                "$TTL 60",
                f"$ORIGIN {origin}",
                f"@\tIN SOA ns1.{origin} hostmaster.{origin} 1 3600 600 86400 60",
                f"@\tIN NS ns1.{origin}",
                f"ns1\tIN A {LOOPBACK_V4}",
                *self._records.get(zone, []),
            ]
            (d / self._zone_file(zone)).write_text("\n".join(lines) + "\n")

    @staticmethod
    def _zone_file(zone: str) -> str:
        return zone.rstrip(".") + ".db"

    def _config(self) -> str:
        d = self._dir
        v6 = (
            f"listen-on-v6 port {self.port} {{ {LOOPBACK_V6}; }};"
            if self.ipv6
            else "listen-on-v6 { none; };"
        )
        key = self.tsig_key_name
        zones = []
        for zone in self.zones:
            db = self._zone_file(zone)
            zones.append(
                f'zone "{zone}" {{\n'
                "\ttype primary;\n"
                f'\tfile "{d / db}";\n'
                f'\tjournal "{d / db}.jnl";\n'
                "\tupdate-policy {\n"
                f'\t\tgrant "{key}" name {self.service_label}.{zone} SRV TXT;\n'
                f'\t\tgrant "{key}" zonesub A AAAA;\n'
                "\t};\n"
                "};\n"
            )
        return (
            "options {\n"
            f'\tdirectory "{d}";\n'
            f'\tpid-file "{d}/named.pid";\n'
            f'\tsession-keyfile "{d}/session.key";\n'
            f'\tmanaged-keys-directory "{d}";\n'
            f'\tdump-file "{d}/named_dump.db";\n'
            f'\tstatistics-file "{d}/named.stats";\n'
            f"\tlisten-on port {self.port} {{ {LOOPBACK_V4}; }};\n"
            f"\t{v6}\n"
            "\trecursion no;\n"
            "\tdnssec-validation no;\n"
            "\tnotify no;\n"
            "\tallow-transfer { none; };\n"
            "};\n"
            "controls { };\n"
            f'key "{key}" {{\n'
            f"\talgorithm {self.tsig_algorithm};\n"
            f'\tsecret "{self.tsig_secret_b64}";\n'
            "};\n" + "".join(zones)
        )

    def _launch(self) -> None:
        d = self._dir
        conf = d / "named.conf"
        conf.write_text(self._config())
        check = shutil.which("named-checkconf") or shutil.which(
            "named-checkconf", path="/usr/sbin:/sbin"
        )
        if check:
            result = subprocess.run(
                [check, str(conf)], capture_output=True, text=True, timeout=30, check=False
            )
            if result.returncode != 0:
                raise ServiceError(f"named.conf rejected:\n{result.stdout}{result.stderr}")
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            # -g: foreground, log to stderr (captured in named.log); no -u: current user.
            self._proc = subprocess.Popen(
                [self.named, "-g", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=d,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        _running.add(self)
        try:
            self._wait_ready(log_start)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, log_start: int) -> None:
        """Wait until every zone answers SOA over TCP; fail fast if named gave up on one."""
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        pending = list(self.zones)
        last_error: object = None
        running_since: float | None = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServiceError(
                    f"named exited with status {proc.returncode} on port {self.port}; "
                    f"log tail:\n{tail_of(self.log_path)}"
                )
            try:
                reply = self.query(pending[0], "SOA", timeout=0.5)
                if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                    pending.pop(0)
                    if not pending:
                        return
                    continue
                last_error = f"{pending[0]}: {dns.rcode.to_text(reply.rcode())}"
            except (OSError, EOFError, dns.exception.DNSException) as exc:
                last_error = exc
            with open(self.log_path, "rb") as log:
                log.seek(log_start)
                news = log.read()
            if b"interface ignored" in news or b"address in use" in news:
                tail = tail_of(self.log_path)
                raise PortInUse(f"named could not listen on port {self.port}; log tail:\n{tail}")
            # "running" is logged once every zone load was tried and the sockets are
            # open: a zone still failing a moment later will not come.
            if b"running" in news:
                running_since = running_since or time.monotonic()
                if time.monotonic() - running_since > 2.0:
                    break
            time.sleep(0.05)
        raise ServiceError(
            f"named did not serve zone {pending[0]} on port {self.port} "
            f"(last: {last_error!r}); log tail:\n{tail_of(self.log_path)}"
        )


# ---------------------------------------------------------------------- PostgreSQL

_PG_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin")


class Postgres(_Service):
    """A real PostgreSQL cluster in a temporary directory, trust auth on 127.0.0.1.

    As root the cluster runs as the ``postgres`` user (or a ``volacttest`` user
    created for it), because PostgreSQL refuses to run as root. Durability
    settings (fsync) are off: tests kill processes, not machines.
    """

    host = LOOPBACK_V4

    def __init__(
        self,
        *,
        dbname: str = "volact_test",
        user: str = "volact",
        settings: Mapping[str, str] | None = None,
    ) -> None:
        """``settings`` are extra ``postgres -c name=value`` server settings."""
        initdb = find_program("initdb", _PG_GLOBS)
        postgres = find_program("postgres", _PG_GLOBS)
        if initdb is None or postgres is None:
            raise ServiceMissing(
                "PostgreSQL server (initdb, postgres)", "apt-get install postgresql"
            )
        # Prefer the postgres next to initdb: the two must be the same version.
        sibling = os.path.join(os.path.dirname(initdb), "postgres")
        self.initdb = initdb
        self.postgres = sibling if os.access(sibling, os.X_OK) else postgres
        self.dbname = dbname
        self.user = user
        self.settings = {
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            **(settings or {}),
        }
        self.port = 0
        self.directory: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._os_user: str | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the test database."""
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    @property
    def dsn(self) -> str:
        """libpq connection string of the test database (for psycopg directly)."""
        return f"host={self.host} port={self.port} user={self.user} dbname={self.dbname}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def log_path(self) -> Path:
        return self._dir / "postgres.log"

    def create_database(self, dbname: str) -> str:
        """Create another database (for tests that need an empty one); return its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._dsn_for("postgres"), autocommit=True, connect_timeout=5) as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        return self.url_for(dbname)

    @property
    def _dir(self) -> Path:
        if self.directory is None:
            raise ServiceError("Postgres has not been started")
        return self.directory

    def _dsn_for(self, dbname: str) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def start(self) -> None:
        """Start the server; the first call runs initdb and creates the database."""
        if self.pid is not None:
            return
        first = self.directory is None
        if first:
            self._os_user = self._pick_os_user()
            self.directory = Path(tempfile.mkdtemp(prefix="volact-pg-"))
            (self.directory / "sock").mkdir()
            if self._os_user is not None:
                pw = pwd.getpwnam(self._os_user)
                for p in (self.directory, self.directory / "sock"):
                    os.chown(p, pw.pw_uid, pw.pw_gid)
            self._initdb()
            last: ServiceError | None = None
            for _ in range(3):  # the free port may be taken before postgres binds it
                self.port = free_port(ipv6=False)
                try:
                    self._launch()
                    break
                except ServiceError as exc:
                    last = exc
                    if "address already in use" not in str(exc).lower():
                        raise
            else:
                assert last is not None
                raise last
            self._create_db()
        else:
            self._launch()

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL after a bound; data stays for :meth:`start`."""
        proc, self._proc = self._proc, None
        stop_process(proc, signal.SIGINT)
        _running.discard(self)

    def close(self) -> None:
        self.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    @staticmethod
    def _pick_os_user() -> str | None:
        """The unprivileged user to run as when root; ``None`` means the current user."""
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "volacttest"):
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                return name
        useradd = find_program("useradd")
        if useradd is None:
            raise ServiceError("running as root, no postgres user and no useradd to make one")
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "volacttest"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return "volacttest"

    def _popen_user(self) -> tuple[int | None, int | None, list[int] | None]:
        """``(user, group, extra_groups)`` for Popen: the server's own PID, no su/runuser.

        Popen switches user in the child itself, so the PID we hold is the server's
        and signals reach it directly rather than through a wrapper.
        """
        if self._os_user is None:
            return None, None, None
        pw = pwd.getpwnam(self._os_user)
        return pw.pw_uid, pw.pw_gid, []

    def _initdb(self) -> None:
        d = self._dir
        uid, gid, groups = self._popen_user()
        result = subprocess.run(
            [
                self.initdb,
                "-D",
                str(d / "data"),
                "--auth=trust",
                f"--username={self.user}",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            cwd=d,
            timeout=120,
            check=False,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
        if result.returncode != 0:
            raise ServiceError(
                f"initdb failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def _launch(self) -> None:
        d = self._dir
        args = [
            self.postgres,
            "-D",
            str(d / "data"),
            "-k",
            str(d / "sock"),
            "-p",
            str(self.port),
            "-h",
            self.host,
        ]
        for name, value in self.settings.items():
            args += ["-c", f"{name}={value}"]
        uid, gid, groups = self._popen_user()
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                cwd=d,
                preexec_fn=die_with_parent(signal.SIGINT),
                user=uid,
                group=gid,
                extra_groups=groups,
            )
        finally:
            os.close(log_fd)
        _running.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        import psycopg

        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        last_error: object = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServiceError(
                    f"postgres exited with status {proc.returncode} on port {self.port}; "
                    f"log tail:\n{tail_of(self.log_path)}"
                )
            try:
                with psycopg.connect(self._dsn_for("postgres"), connect_timeout=2) as c:
                    c.execute("SELECT 1")
                return
            except psycopg.Error as exc:
                last_error = exc
            time.sleep(0.05)
        raise ServiceError(
            f"postgres did not accept connections on port {self.port} within "
            f"{START_TIMEOUT:.0f}s (last: {last_error!r}); log tail:\n{tail_of(self.log_path)}"
        )

    def _create_db(self) -> None:
        if self.dbname != "postgres":
            self.create_database(self.dbname)
