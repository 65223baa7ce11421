"""``volact demo``: the case study played out on loopback, as a newcomer first meets it.

A vendor authority and a key management host run as real, separate processes
(``python -m volact ...``); when BIND 9 is installed a private ``named`` on loopback
takes the host's SRV record and the machines discover the host through it. Thirty
simulated machines (in-process :class:`volact.Activation` objects, each with its own
home, CMID and workstation name) talk to the host over real TCP: the first 24 are
refused "count too low", the 25th and later are activated, the refused ones retry,
a week passes (the host restarts with its clock moved, its count intact), everyone
renews, and a MAK machine activates directly with the authority.

The setup commands run in-process through the CLI entry point the caller passes in
(this module does not import :mod:`volact.cli`); every wait is bounded; every
process started is recorded in ``DIR/demo-pids.json`` and stopped (SIGTERM, then
SIGKILL after a bound) whatever happens, Ctrl-C and SIGTERM included.

This is a demonstration driver: it holds no licensing policy, and nothing in the
product imports it. It openly uses the test scaffolding of :mod:`volact.testing`
(a private BIND 9, starting and stopping processes), as the test suite does.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from volact import wire
from volact.client import mak, transport
from volact.client.api import Activation, Status
from volact.client.srv import HostAddress
from volact.errors import ConfigurationError, VolactError
from volact.exchanges import MakRequest, MakResponse, dumps
from volact.profile import ProductProfile
from volact.testing.processes import die_with_parent, stop_process

#: The zone the private BIND serves and the host publishes into.
ZONE = "demo.example"
#: The host's name in that zone.
HOST_FQDN = f"kms1.{ZONE}"
#: The SKU every simulated machine installs (desktop group: threshold 25).
DESKTOP_SKU = "Acme Desktop 2026 Professional"
#: How far the clocks move for "a week later": past the 7-day renewal interval.
WEEK_SECONDS = 7 * 86400 + 3 * 3600
#: How far the refused machines' clocks move before they retry: the 120-minute
#: activation interval the host sends (and under the host's 4-hour skew limit).
RETRY_SECONDS = 2 * 3600 + 60
#: How long a child process may take to be ready, and to exit once asked.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
#: The file in the demo directory that lists every process the demo started.
PIDS_FILE = "demo-pids.json"

CliMain = Callable[[Sequence[str]], int]


class DemoError(VolactError):
    """The demo could not do a step (a command failed, a process did not start)."""

    code = "demo_failed"


class Interrupted(BaseException):
    """SIGTERM/SIGHUP arrived: unwind like Ctrl-C so that every process is stopped."""


@dataclass(frozen=True)
class DemoOptions:
    """What ``volact demo`` was asked to do."""

    directory: Path | None = None  #: where to work (default: a new temporary directory)
    keep: bool = False  #: keep the temporary directory at the end
    clients: int = 30  #: how many simulated machines
    dns: bool = True  #: use a private BIND 9 when ``named`` is installed
    json: bool = False  #: one JSON object on stdout; progress lines on stderr


@dataclass
class MachineRow:
    """One simulated machine's story, as the table shows it."""

    name: str  #: workstation name (``desk-01``)
    first: str = ""  #: result of its first attempt
    first_count: str = ""  #: count/required in that reply
    retry: str = ""  #: result of its retry (refused machines only)
    renewal: str = ""  #: result of its renewal a week later
    renewal_count: str = ""  #: count/required in that reply
    state: str = ""  #: license state now
    host: str = ""  #: the host that answered


@dataclass
class Traffic:
    """Frame sizes as the clients sent and received them (length prefix included)."""

    activate_request: list[int] = field(default_factory=list)  #: ActivateRequest frames
    reply_ok: list[int] = field(default_factory=list)  #: ActivateReply frames with a ticket
    reply_refused: list[int] = field(default_factory=list)  #: ActivateReply frames without
    license_request: list[int] = field(default_factory=list)  #: GetLicense frames
    license_reply: list[int] = field(default_factory=list)  #: LicenseReply frames
    mak_request: list[int] = field(default_factory=list)  #: MAK request JSON bodies
    mak_response: list[int] = field(default_factory=list)  #: MAK response JSON bodies

    def record(self, request: bytes, reply: bytes) -> None:
        sent = wire.decode(request, max_frame=wire.MAX_REQUEST_FRAME)
        got = wire.decode(reply)
        if isinstance(sent, wire.GetLicense):
            self.license_request.append(len(request))
            self.license_reply.append(len(reply))
            return
        self.activate_request.append(len(request))
        ok = isinstance(got, wire.ActivateReply) and got.result is wire.Result.OK
        (self.reply_ok if ok else self.reply_refused).append(len(reply))

    def to_json(self) -> dict[str, Any]:
        def span(sizes: list[int]) -> dict[str, int] | None:
            return {"min": min(sizes), "max": max(sizes), "n": len(sizes)} if sizes else None

        return {
            "activate_request": span(self.activate_request),
            "activate_reply_ok": span(self.reply_ok),
            "activate_reply_refused": span(self.reply_refused),
            "license_request": span(self.license_request),
            "license_reply": span(self.license_reply),
            "mak_request_json": span(self.mak_request),
            "mak_response_json": span(self.mak_response),
        }


# ------------------------------------------------------------------------ display


class Display:
    """Progress for people: one concise line per event (logs, pipes, ``--json``)."""

    #: Seconds to pause after each machine, so that a person sees the count rise.
    pace = 0.0

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def say(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def step(self, what: str, command: str, result: str) -> None:
        self.say(f"  {what:<10} {result}")
        self.say(f"  {'':<10} $ {command}")

    def phase(self, title: str) -> None:
        self.say("")
        self.say(f"== {title}")

    def start_table(self, rows: list[MachineRow]) -> None:
        pass

    def machine(self, row: MachineRow, event: str) -> None:
        self.say(f"  {row.name:<8} {event}")

    def stop_table(self) -> None:
        pass


class LiveDisplay(Display):
    """The same, with the machines in a live ``rich`` table when stdout is a terminal."""

    pace = 0.1  # 30 machines take well under a second otherwise: too fast to watch

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        from rich.console import Console

        self.console = Console(file=stream, highlight=False)
        self._live: Any = None
        self._rows: list[MachineRow] = []
        self._current = 0  # index of the machine last served

    def say(self, text: str) -> None:
        self.console.print(text, markup=False)

    def phase(self, title: str) -> None:
        self.console.print(f"\n[bold]== {title}[/bold]")
        if self._live is not None:
            self._live.update(self._table())

    def _table(self) -> Any:
        from rich.table import Table

        rows = self._rows
        # A table taller than the terminal cannot be redrawn in place: show a window
        # that follows the machine being served, and say how many are off screen.
        room = max(5, self.console.height - 4)
        first = 0
        if len(rows) > room:
            first = min(max(0, self._current + 1 - room), len(rows) - room)
        shown = rows[first : first + room]
        hidden_before, hidden_after = first, len(rows) - first - len(shown)
        caption = None
        if hidden_before or hidden_after:
            caption = f"({hidden_before} machines above, {hidden_after} below)"
        table = Table(box=None, pad_edge=False, header_style="bold", caption=caption)
        # Widths of the longest cells: on a narrow terminal only the host name is cut.
        for name, width in (("machine", 7), ("1st attempt", 13), ("count", 5), ("retry", 9),
                            ("week later", 10), ("count", 5), ("state", 8)):  # fmt: skip
            table.add_column(name, no_wrap=True, min_width=width)
        table.add_column("host", no_wrap=True, overflow="ellipsis")
        style = {"activated": "green", "renewed": "green", "count too low": "yellow"}
        for r in shown:
            host = r.host.rsplit(":", 1)[0]
            cells = [r.name, r.first, r.first_count, r.retry, r.renewal, r.renewal_count,
                     r.state, host]  # fmt: skip
            table.add_row(*(f"[{style[c]}]{c}[/]" if c in style else c for c in cells))
        return table

    def start_table(self, rows: list[MachineRow]) -> None:
        from rich.live import Live

        self._rows = rows
        self._current = 0
        self._live = Live(
            self._table(),
            console=self.console,
            refresh_per_second=12,
            vertical_overflow="crop",
            transient=False,
        )
        self._live.start()

    def machine(self, row: MachineRow, event: str) -> None:
        if self._live is None:
            super().machine(row, event)
            return
        with contextlib.suppress(ValueError):
            self._current = self._rows.index(row)
        self._live.update(self._table())

    def stop_table(self) -> None:
        if self._live is not None:
            self._live.update(self._table(), refresh=True)
            self._live.stop()
            self._live = None


# ---------------------------------------------------------------------- processes


class Child:
    """A ``volact`` command in a separate process, in its own session, stopped by PID."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        with open(self.log_path, "ab") as log:
            # Own session: a terminal's Ctrl-C reaches only the demo, which stops the
            # children in order; PDEATHSIG covers the demo being killed outright.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "volact", *self.argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        return self.proc.pid

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int | None:
        """Signal the process and wait (bounded); SIGKILL if it does not exit."""
        if self.proc is None:
            return None
        stop_process(self.proc, sig, STOP_TIMEOUT)
        return self.proc.returncode


def _wait_json(path: Path, child: Child, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Wait (bounded) for ``path`` to hold a JSON object ``ready`` accepts."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not child.alive():
            raise DemoError(f"{child.name} exited early:\n{child.log_tail()}")
        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError):  # not written yet, or caught half-written
            obj = None
        if isinstance(obj, dict) and ready(obj):
            return obj
        time.sleep(0.05)
    raise DemoError(f"{child.name} was not ready after {START_TIMEOUT:.0f} s:\n{child.log_tail()}")


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Interrupted` (Ctrl-C raises KeyboardInterrupt)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    old: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            old[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def named_available() -> bool:
    """Whether BIND 9's ``named`` is installed (the DNS part of the demo needs it)."""
    from volact.testing.processes import find_program

    return find_program("named") is not None


# --------------------------------------------------------------------------- demo


class Demo:
    """One run of the demo: the steps, the processes, the machines."""

    def __init__(self, options: DemoOptions, cli: CliMain, display: Display) -> None:
        self.options = options
        self.cli = cli
        self.display = display
        self.dir = Path(".")
        self.children: list[Child] = []
        self.pids: list[dict[str, Any]] = []
        self.ports: list[int] = []
        self.bind: Any = None
        self.traffic = Traffic()
        self.rows: list[MachineRow] = []
        self.offset = 0.0  # seconds the simulated machines' clocks are ahead
        self.summary: dict[str, Any] = {}

    # -- helpers ---------------------------------------------------------------------

    def run_cli(self, argv: list[str]) -> str:
        """Run a volact command in-process; its stdout, or DemoError with its stderr."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = self.cli(argv)
        if code == 130:
            raise KeyboardInterrupt
        if code != 0:
            raise DemoError(f"`volact {' '.join(argv)}` failed ({code}): {err.getvalue().strip()}")
        return out.getvalue()

    def cli_json(self, argv: list[str]) -> dict[str, Any]:
        obj = json.loads(self.run_cli([*argv, "--json"]))
        assert isinstance(obj, dict)
        return obj

    def rel(self, path: Path) -> str:
        return f"$D/{path.relative_to(self.dir)}"

    def _record_pids(self) -> None:
        (self.dir / PIDS_FILE).write_text(
            json.dumps({"pid": os.getpid(), "children": self.pids, "ports": self.ports}) + "\n"
        )

    def spawn(self, name: str, argv: list[str], log: Path) -> Child:
        child = Child(name, argv, log)
        self.children.append(child)
        pid = child.start()
        self.pids.append({"name": name, "pid": pid})
        self._record_pids()
        return child

    def stop_all(self) -> None:
        """Stop every child (newest first) and named; never raises.

        A second Ctrl-C (or SIGTERM) while stopping is ignored: it would otherwise
        abandon the processes not yet stopped. Each stop is bounded in time.
        """
        ignored: dict[signal.Signals, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError):
                ignored[sig] = signal.signal(sig, signal.SIG_IGN)
        try:
            for child in reversed(self.children):
                with contextlib.suppress(Exception):
                    child.stop()
            if self.bind is not None:
                with contextlib.suppress(Exception):
                    self.bind.close()
                self.bind = None
        finally:
            for sig, previous in ignored.items():
                signal.signal(sig, previous)

    # -- the story ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        o = self.options
        d = self.display
        d.say(f"volact demo: the case study on loopback, in {self.dir} ($D below)")

        d.phase("the vendor: an authority with a signing key, a catalog and keys")
        auth = self.dir / "authority"
        info = self.cli_json(["authority", "init", "--home", str(auth), "--demo-catalog"])
        host_key = self.cli_json(
            ["authority", "issue-key", "--home", str(auth), "--kind", "host", "--group", "server"]
        )["key"]
        mak_key = self.cli_json(
            [
                "authority",
                "issue-key",
                "--home",
                str(auth),
                "--kind",
                "mak",
                "--group",
                "desktop",
                "--activations",
                "10",
            ]
        )["key"]
        d.step(
            "authority",
            f"volact authority init --home {self.rel(auth)} --demo-catalog",
            f"vendor key {info['vendor_key_id']}, SQLite store",
        )
        d.step(
            "keys",
            "volact authority issue-key --kind host --group server (and --kind mak)",
            f"host key {_mask(host_key)}, MAK {_mask(mak_key)}",
        )
        authority = self.spawn(
            "authority",
            ["authority", "serve", "--home", str(auth), "--listen", "127.0.0.1:0"],
            self.dir / "authority.log",
        )
        served = _wait_json(auth / "serve.json", authority, lambda j: bool(j.get("url")))
        url = str(served["url"])
        self.ports.append(int(served["port"]))
        self._record_pids()
        d.step(
            "serving",
            f"volact authority serve --home {self.rel(auth)} --listen 127.0.0.1:0",
            f"{url} (pid {authority.pid})",
        )
        profile_path = self.dir / "profile.json"
        self.run_cli(
            [
                "authority",
                "export-profile",
                "--home",
                str(auth),
                "--out",
                str(profile_path),
                "--authority-url",
                url,
            ]
        )
        d.step(
            "profile",
            f"volact authority export-profile --home {self.rel(auth)} --out "
            f"{self.rel(profile_path)}",
            "vendor public key, catalog, GVLKs: ships in the product",
        )
        profile = ProductProfile.loads(profile_path.read_bytes())

        d.phase("the customer: a key management host, activated online with the authority")
        host = self.dir / "host"
        self.run_cli(
            [
                "host",
                "init",
                "--home",
                str(host),
                "--profile",
                str(profile_path),
                "--fqdn",
                HOST_FQDN,
            ]
        )
        self.run_cli(["host", "install-key", "--home", str(host), host_key])
        act = self.cli_json(["host", "activate", "--home", str(host), "--authority", url])
        d.step(
            "host",
            f"volact host init --home {self.rel(host)} --fqdn {HOST_FQDN}; "
            "install-key KEY; activate --authority URL",
            f"host {act['host_id']} licensed for {', '.join(act['licensed_groups'])}",
        )

        use_dns = o.dns and named_available()
        nameservers: list[HostAddress] | None = None
        if use_dns:
            from volact.testing.services import Bind9

            self.bind = Bind9(zones=(ZONE,), tsig_key_name="volact-demo-key")
            self.bind.start()
            self.pids.append({"name": "named", "pid": self.bind.pid})
            self.ports.append(self.bind.port)
            self._record_pids()
            key_file = self.bind.write_key_file(self.dir / "tsig.key")
            self.run_cli(
                [
                    "host",
                    "dns",
                    "--home",
                    str(host),
                    "--server",
                    f"127.0.0.1:{self.bind.port}",
                    "--tsig-key-file",
                    str(key_file),
                    "--enable",
                ]
            )
            nameservers = [HostAddress("127.0.0.1", self.bind.port)]
            d.step(
                "DNS",
                f"volact host dns --home {self.rel(host)} --server 127.0.0.1:"
                f"{self.bind.port} --tsig-key-file {self.rel(key_file)} --enable",
                f"private BIND 9 on 127.0.0.1:{self.bind.port} (pid {self.bind.pid}), "
                f"zone {ZONE}, TSIG",
            )
        elif o.dns:
            d.step(
                "DNS",
                "make deps   (or: apt-get install bind9 bind9-dnsutils)",
                "BIND 9 (named) is not installed: machines use the host by address",
            )
        offset_ok = self._host_has_clock_offset()
        port = self._serve_host(host, listen="127.0.0.1:0", offset=0)
        d.step(
            "serving",
            f"volact host serve --home {self.rel(host)} --listen 127.0.0.1:0",
            f"{HOST_FQDN} on 127.0.0.1:{port} (pid {self.children[-1].pid})",
        )
        if use_dns:
            srv = self._wait_srv(port)
            d.step("published", f"dig @127.0.0.1 -p {self.bind.port} _volact._tcp.{ZONE} SRV", srv)

        n = o.clients
        required = profile.catalog.group("desktop").threshold
        self.rows = [MachineRow(f"desk-{i:02d}") for i in range(1, n + 1)]
        machines = [self._machine(profile, row, nameservers, port) for row in self.rows]

        d.phase(f"{n} machines install the desktop setup key (GVLK) and activate, one by one")
        d.say(
            f"  the host activates desktops once it has counted {required} machines "
            "(per machine: volact client activate --home DIR)"
        )
        d.start_table(self.rows)
        refused_first = activated_first = 0
        for row, m in zip(self.rows, machines, strict=True):
            st = m.activate()
            row.first, row.first_count = _outcome(st), _count(st)
            row.state, row.host = st.state, st.host or ""
            refused_first += st.result == "count_too_low"
            activated_first += st.activated
            d.machine(row, f"{row.first:<14} count {row.first_count:<6} {row.state}")
            time.sleep(d.pace)

        d.phase("the refused machines retry at their activation interval (2 h later)")
        self.offset = RETRY_SECONDS
        activated_retry = 0
        for row, m in zip(self.rows, machines, strict=True):
            if row.first == "activated":
                continue
            st, acted = m.tick()
            row.retry = _outcome(st) if acted else "not due"
            row.state, row.host = st.state, st.host or row.host
            activated_retry += st.activated
            d.machine(row, f"retry: {row.retry:<14} count {_count(st):<6} {row.state}")
            time.sleep(d.pace / 2)

        d.stop_table()
        renewed = 0
        count_after_restart: int | None = None
        if offset_ok:
            d.phase("a week passes: the host restarts (its count is on disk), machines renew")
            self.children[-1].stop()
            status = self.cli_json(["host", "status", "--home", str(host)])
            count_after_restart = int(status["count"])
            d.step(
                "stopped",
                f"volact host status --home {self.rel(host)} --json",
                f"host stopped; its store still counts {count_after_restart} machines",
            )
            self._serve_host(host, listen=f"127.0.0.1:{port}", offset=WEEK_SECONDS)
            d.step(
                "restarted",
                f"volact host serve --home {self.rel(host)} --clock-offset {WEEK_SECONDS}",
                f"pid {self.children[-1].pid}, clock 7 days 3 h ahead",
            )
            self.offset = WEEK_SECONDS
            d.start_table(self.rows)
            for row, m in zip(self.rows, machines, strict=True):
                st, acted = m.tick()
                row.renewal = (
                    ("renewed" if st.result == "ok" else _outcome(st)) if acted else "not due"
                )
                row.renewal_count, row.state = _count(st), st.state
                renewed += acted and st.result == "ok"
                d.machine(
                    row, f"a week later: {row.renewal:<12} count {row.renewal_count:<6} {row.state}"
                )
                time.sleep(d.pace / 2)
            d.stop_table()
        else:
            d.phase("a week passes: skipped (this host has no `volact host serve --clock-offset`)")

        d.phase("a machine with a multiple-activation key (MAK) activates with the authority")
        self.offset = 0.0
        mak_home = self.dir / "clients" / "mak-01"
        mak_machine = Activation(
            profile,
            mak_home,
            sku=DESKTOP_SKU,
            workstation="mak-01",
            vm=False,
            authority_url=url,
            post_mak=self._post_mak,
        )
        mak_machine.install_key(mak_key, sku=DESKTOP_SKU)
        mst = mak_machine.activate()
        d.step(
            "mak-01",
            f"volact client install-key --home {self.rel(mak_home)} MAK --sku "
            f"'{DESKTOP_SKU}'; volact client activate",
            f"{'activated, permanent' if mst.permanent else mst.last_error}",
        )

        elapsed = time.monotonic() - started
        activated_now = sum(1 for m in machines if m.status().activated)
        self.summary = {
            "directory": str(self.dir),
            "dns": use_dns,
            "clients": n,
            "required": required,
            "refused_count_too_low": refused_first,
            "activated_first_pass": activated_first,
            "activated_on_retry": activated_retry,
            "activated": activated_now,
            "week_simulated": offset_ok,
            "renewed": renewed,
            "host_count_after_restart": count_after_restart,
            "mak_activated": mst.permanent,
            "bytes": self.traffic.to_json(),
            "seconds": round(elapsed, 2),
            "processes": self.pids,
            "ports": self.ports,
        }
        expected_refused = min(n, required - 1)
        self.summary["ok"] = (
            refused_first == expected_refused
            and activated_first == n - expected_refused
            and (n < required or activated_now == n)
            and (not offset_ok or renewed == activated_now)
            and mst.permanent
        )
        return self.summary

    def _host_has_clock_offset(self) -> bool:
        # The flag belongs to `volact host serve`; older hosts lack it (the week is skipped).
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            self.cli(["host", "serve", "--help"])
        return "--clock-offset" in out.getvalue()

    def _serve_host(self, home: Path, *, listen: str, offset: int) -> int:
        argv = ["host", "serve", "--home", str(home), "--listen", listen]
        if offset:
            argv += ["--clock-offset", str(offset)]
        child = self.spawn("host", argv, self.dir / "host.log")
        pid = child.pid
        served = _wait_json(home / "serve.json", child, lambda j: j.get("pid") == pid)
        port = int(served["ports"][0])
        if port not in self.ports:
            self.ports.append(port)
            self._record_pids()
        return port

    def _wait_srv(self, port: int) -> str:
        import dns.exception
        import dns.rdatatype

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, EOFError, dns.exception.DNSException):
                reply = self.bind.query(f"_volact._tcp.{ZONE}", "SRV", timeout=1.0)
                for rrset in reply.answer:
                    if rrset.rdtype == dns.rdatatype.SRV:
                        for rd in rrset:
                            if rd.port == port:
                                return (
                                    f"_volact._tcp.{ZONE} SRV {rd.priority} {rd.weight} "
                                    f"{rd.port} {rd.target}"
                                )
            time.sleep(0.05)
        raise DemoError(
            f"the host did not publish its SRV record in {START_TIMEOUT:.0f} s "
            f"(see {self.dir / 'host.log'})"
        )

    def _machine(
        self, profile: ProductProfile, row: MachineRow, ns: list[HostAddress] | None, port: int
    ) -> Activation:
        def exchange(address: HostAddress, frame: bytes, timeout: float) -> bytes:
            reply = transport.exchange(address, frame, timeout, nameservers=ns)
            self.traffic.record(frame, reply)
            return reply

        m = Activation(
            profile,
            self.dir / "clients" / row.name,
            sku=DESKTOP_SKU,
            clock=lambda: time.time() + self.offset,
            exchange=exchange,
            nameservers=ns,
            workstation=row.name,
            vm=False,
            attempt_seconds=10.0,
        )
        if ns is not None:
            m.set_domain(ZONE)
        else:
            m.set_host(f"127.0.0.1:{port}")
        return m

    def _post_mak(self, url: str, request: MakRequest) -> MakResponse:
        response = mak.post_mak(url, request)
        self.traffic.mak_request.append(len(dumps(request).encode()))
        self.traffic.mak_response.append(len(dumps(response).encode()))
        return response


def _mask(key: str) -> str:
    return "XXXXX-XXXXX-XXXXX-XXXXX-" + key[-5:]


def _outcome(st: Status) -> str:
    if st.result == "ok":
        return "activated"
    if st.result is not None:
        return st.result.replace("_", " ")
    return "no answer"


def _count(st: Status) -> str:
    if st.count is None:
        return ""
    return f"{st.count}/{st.required_count}"


def summary_lines(s: dict[str, Any]) -> list[str]:
    """The closing summary, for people."""
    b = s["bytes"]

    def span(name: str) -> str:
        v = b.get(name)
        return (
            "-"
            if v is None
            else (f"{v['min']} B" if v["min"] == v["max"] else f"{v['min']}-{v['max']} B")
        )

    lines = [
        "",
        "== summary",
        f'  machines        {s["clients"]}: {s["refused_count_too_low"]} refused "count too low" '
        f"at first, {s['activated_first_pass']} activated at once, "
        f"{s['activated_on_retry']} more on retry; {s['activated']} licensed now",
    ]
    if s["week_simulated"]:
        lines.append(
            f"  a week later    {s['renewed']} renewed; the restarted host still counted "
            f"{s['host_count_after_restart']}"
        )
    lines += [
        f"  MAK             {'activated (permanent)' if s['mak_activated'] else 'FAILED'}",
        f"  bytes/exchange  request {span('activate_request')}, reply {span('activate_reply_ok')} "
        f"with a ticket, {span('activate_reply_refused')} refused (frames on the TCP stream, "
        "length prefix included; TCP/IP headers not)",
        f"                  host license fetch once per host: {span('license_request')} up, "
        f"{span('license_reply')} down; MAK JSON {span('mak_request_json')} up, "
        f"{span('mak_response_json')} down",
        "  DNS             "
        + ("private BIND 9, SRV discovery" if s["dns"] else "not used (manual host)"),
        f"  time            {s['seconds']:.1f} s",
        f"  directory       {s['directory']}",
    ]
    return lines


def run_demo(
    options: DemoOptions,
    cli: CliMain,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Play the demo; 0 if it showed what it should, 1 if not, 130 when interrupted."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if options.clients < 1 or options.clients > 999:
        raise ConfigurationError("--clients must be between 1 and 999")
    stream = err if options.json else out
    display: Display = LiveDisplay(stream) if stream.isatty() else Display(stream)
    temporary = options.directory is None
    if options.directory is None:
        directory = Path(tempfile.mkdtemp(prefix="volact-demo-"))
    else:
        directory = options.directory.resolve()
        if directory.exists() and any(directory.iterdir()):
            raise ConfigurationError(f"{directory} is not empty: give a new or empty --dir")
        directory.mkdir(parents=True, exist_ok=True)
    demo = Demo(options, cli, display)
    demo.dir = directory
    code = 1
    summary: dict[str, Any] = {}
    try:
        with _signals_unwind():
            try:
                summary = demo.run()
                code = 0 if summary["ok"] else 1
            except (KeyboardInterrupt, Interrupted):
                display.stop_table()
                display.say("\ninterrupted: stopping everything the demo started")
                code = 130
            except (VolactError, OSError) as exc:
                display.stop_table()
                display.say(f"demo failed: {exc}")
                code = 1
            finally:
                display.stop_table()
                demo.stop_all()
    finally:
        remove = temporary and not options.keep
        if summary:
            summary["directory_kept"] = not remove
            if not options.json:
                for line in summary_lines(summary):
                    display.say(line)
                if remove:
                    display.say(
                        "                  (removed; `volact demo --keep` keeps it to look around)"
                    )
                stopped = ", ".join(f"{p['name']} {p['pid']}" for p in summary["processes"])
                display.say(f"  stopped         {stopped}")
                display.say("  result          " + ("OK" if code == 0 else "NOT AS EXPECTED"))
        if remove:
            shutil.rmtree(directory, ignore_errors=True)
        elif code == 130 or not summary:
            display.say(f"demo directory: {directory}")
    if options.json:
        summary.setdefault("directory", str(directory))
        summary["exit"] = code
        out.write(json.dumps(summary, sort_keys=True) + "\n")
        out.flush()
    return code
