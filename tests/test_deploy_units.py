"""The systemd units under deploy/systemd/ (issue 12 item 1).

``systemd-analyze verify`` checks each unit (with ExecStart pointing at this venv's
``volact``, since /opt/volact is where docs/install.md installs it). Then each
service is started with **the unit's own ExecStart command line**, its
``$VOLACT_*_ARGS`` expanded from the shipped sample environment file the way
systemd expands an unbraced variable (split into words); only the install prefix,
the state directory and the port numbers are moved into a temporary directory and
free loopback ports. SIGTERM must stop it with exit 0 and leave no process, no
``serve.json`` and no listening socket. The sysusers file is applied to an empty
root with ``systemd-sysusers --root``.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from volact.cli import main
from volact.testing.hosts import make_host_home
from volact.testing.processes import free_port

UNITS = Path(__file__).resolve().parent.parent / "deploy" / "systemd"
VOLACT = Path(sys.prefix) / "bin" / "volact"
INSTALLED = "/opt/volact/bin/volact"
STATE = "/var/lib/volact"


def _need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{program} is missing (Debian package systemd)")
        pytest.skip(f"{program} is not installed (Debian package systemd)")
    return path


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def _env_file(name: str) -> dict[str, str]:
    env = {}
    for line in (UNITS / name).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


@pytest.mark.parametrize(
    "unit", ["volact-host.service", "volact-authority.service", "volact-client-agent.service"]
)
def test_systemd_analyze_verify(unit: str, tmp_path: Path) -> None:
    analyze = _need("systemd-analyze")
    text = (UNITS / unit).read_text()
    assert INSTALLED in text
    (tmp_path / unit).write_text(text.replace(INSTALLED, str(VOLACT)))
    proc = subprocess.run([analyze, "verify", str(tmp_path / unit)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    service = _unit(unit)["Service"]
    for hardening in ("NoNewPrivileges", "ProtectSystem", "StateDirectory", "User"):
        assert service.get(hardening), hardening
    assert service["ProtectSystem"] == "strict" and service["User"] != "root"
    if unit == "volact-host.service":
        assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"


def test_sysusers_file_creates_the_user_and_the_monitoring_group(tmp_path: Path) -> None:
    sysusers = _need("systemd-sysusers")
    (tmp_path / "etc").mkdir()
    proc = subprocess.run([sysusers, f"--root={tmp_path}", str(UNITS / "volact.sysusers.conf")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^volact:x:\d+:\d+:", (tmp_path / "etc/passwd").read_text(), re.M)
    assert re.search(r"^volact-monitor:x:\d+:volact$", (tmp_path / "etc/group").read_text(), re.M)


def _command(unit: str, env_file: str, state: Path, ports: dict[str, int]) -> list[str]:
    """The unit's ExecStart, as systemd would run it, moved into ``state``."""
    service = _unit(unit)["Service"]
    env = _env_file(env_file)
    line = service["ExecStart"]
    for key, value in env.items():  # $VAR unbraced: split into words (systemd.service(5))
        line = line.replace(f"${key}", value)
    argv = shlex.split(line)
    assert argv[0] == INSTALLED
    out = [str(VOLACT)]
    for word in argv[1:]:
        word = word.replace(STATE, str(state))
        for old, new in ports.items():
            word = word.replace(old, str(new))
        out.append(word.replace("0.0.0.0:", "127.0.0.1:").replace("[::]:", "[::1]:"))
    return out


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    got: list[str] = []
    def read() -> None:
        got.append(proc.stdout.readline() if proc.stdout else "")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return got[0] if got else ""


def _alive_in_group(pgid: int) -> list[str]:
    """Processes of process group ``pgid`` that are not zombies, as ``pid command``."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # it ended while we looked
        fields = text.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(f"{stat.parent.name} {text.split(' ', 1)[1][:60]}")
    return alive


def _run_until_ready_then_term(argv: list[str], ready: str, ports: list[int]) -> None:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        line = _readline(proc, 30.0)
        assert ready in line, line
        for port in ports:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass  # it listens where the unit says
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    # Nothing of its session may still run (zombies excepted: in a container nobody
    # may reap an orphan; under systemd the unit's cgroup is emptied anyway).
    deadline = time.monotonic() + 15
    while _alive_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive_in_group(proc.pid) == []
    for port in ports:
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass


def test_host_unit_starts_and_stops_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "host"
    make_host_home(home)
    host_port, metrics_port = free_port(), free_port()
    argv = _command("volact-host.service", "host.env", tmp_path,
                    {"1688": host_port, "9188": metrics_port})  # fmt: skip
    assert "--metrics" in argv and f"[::1]:{host_port}" in argv
    _run_until_ready_then_term(argv, "listening on", [host_port, metrics_port])
    assert not (home / "serve.json").exists()


def test_authority_unit_starts_and_stops_cleanly(tmp_path: Path) -> None:
    assert main(["authority", "init", "--home", str(tmp_path / "authority"),
                 "--demo-catalog"]) == 0  # fmt: skip
    port = free_port()
    argv = _command("volact-authority.service", "authority.env", tmp_path, {"8088": port})
    _run_until_ready_then_term(argv, "listening on", [port])
    assert not (tmp_path / "authority" / "serve.json").exists()


def test_client_agent_unit_starts_and_stops_cleanly(tmp_path: Path) -> None:
    from client_support import PROFILE, SERVER

    profile = tmp_path / "profile.json"
    profile.write_text(PROFILE.dumps())
    home = tmp_path / "client"
    assert main(["client", "init", "--home", str(home), "--profile", str(profile),
                 "--sku", SERVER.name]) == 0  # fmt: skip
    # No host anywhere: the agent tries, stays in grace and waits; SIGTERM ends it.
    assert main(["client", "set-host", "--home", str(home), f"127.0.0.1:{free_port()}"]) == 0
    argv = _command("volact-client-agent.service", "client.env", tmp_path, {})
    _run_until_ready_then_term(argv, "state=grace", [])
