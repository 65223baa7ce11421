"""``volact demo`` as a newcomer runs it: a separate process that must leave nothing behind.

The demo records every process it starts (and every port) in ``DIR/demo-pids.json``
and in its ``--json`` summary; these tests check that the story happened (24 refused
"count too low", the rest activated, renewals a week later, a MAK machine), that the
frames stayed under the 250-byte budget, and that after a normal end, Ctrl-C or
SIGTERM no process it started is alive and its ports are free again.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from volact.cli import main
from volact.demo import PIDS_FILE, DemoOptions, run_demo

pytestmark = pytest.mark.slow

TIMEOUT = 120.0


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "volact", "demo", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited; only its parent has not collected it yet
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _port_free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not in use
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _assert_nothing_left(record: dict[str, Any]) -> None:
    pids = [p["pid"] for p in record["children"] if p["pid"]]
    assert pids, record
    assert [p for p in pids if _alive(p)] == []
    assert [p for p in record["ports"] if not _port_free(p)] == []


def _host_has_clock_offset(capsys: pytest.CaptureFixture[str]) -> bool:
    main(["host", "serve", "--help"])
    return "--clock-offset" in capsys.readouterr().out


def test_demo_runs_the_case_study_and_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "demo"
    proc = _demo("--dir", str(work), "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["ok"] and s["exit"] == 0
    assert (s["clients"], s["required"]) == (30, 25)
    assert s["refused_count_too_low"] == 24
    assert s["activated_first_pass"] == 6 and s["activated_on_retry"] == 24
    assert s["activated"] == 30 and s["mak_activated"]
    if _host_has_clock_offset(capsys):
        assert s["week_simulated"] and s["renewed"] == 30
        assert s["host_count_after_restart"] == 30
    sizes = s["bytes"]
    assert sizes["activate_request"]["n"] >= 54  # 30 first attempts + 24 retries
    for name in ("activate_request", "activate_reply_ok", "activate_reply_refused"):
        assert sizes[name]["max"] < 250  # the case study's budget per direction
    assert sizes["activate_reply_ok"]["min"] > sizes["activate_reply_refused"]["max"]  # ticket
    names = {p["name"] for p in s["processes"]}
    assert {"authority", "host"} <= names
    assert s["dns"] == ("named" in names)
    # Progress went to stderr, one line per machine; stdout held only the JSON.
    assert "desk-24" in proc.stderr and "count too low" in proc.stderr
    record = json.loads((work / "demo-pids.json").read_text())
    assert record["children"] == s["processes"]
    _assert_nothing_left(record)
    # The demo's own homes stay in a --dir: a person can look around with volact.
    assert main(["host", "status", "--home", str(work / "host"), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["count"] == 30 and not status["serving"]


def test_demo_twice_in_a_row_in_temporary_directories_without_dns() -> None:
    texts = []
    for _ in range(2):
        proc = _demo("--no-dns", "--clients", "26")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        texts.append(proc.stdout)
    for text in texts:
        assert "desk-01  count too low  count 1/25" in text
        assert "desk-25  activated      count 25/25" in text
        assert "result          OK" in text
        directory = next(
            line.split()[-1] for line in text.splitlines() if line.startswith("  directory")
        )
        assert not Path(directory).exists()  # removed: no --keep
    assert texts[0].split("  directory")[1] != texts[1].split("  directory")[1]


def test_demo_usage_errors(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("mine")
    proc = _demo("--dir", str(busy))
    assert proc.returncode == 1 and "not empty" in proc.stderr
    assert (busy / "something").read_text() == "mine"
    assert _demo("--clients", "0").returncode == 1
    assert _demo("--clients", "many").returncode == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_demo_stops_every_process(tmp_path: Path, sig: signal.Signals) -> None:
    work = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "volact", "demo", "--dir", str(work), "--no-dns"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pids = work / "demo-pids.json"
    try:
        deadline = time.monotonic() + 60
        while not pids.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert pids.exists(), "the demo started no process"
        proc.send_signal(sig)  # while the authority is starting
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out
    assert "interrupted: stopping everything" in out
    _assert_nothing_left(json.loads(pids.read_text()))


class _Terminal(io.StringIO):
    """A stdout that says it is a terminal, so the demo draws its live table."""

    def isatty(self) -> bool:
        return True


def test_live_table_on_a_terminal(tmp_path: Path) -> None:
    out, err = _Terminal(), io.StringIO()
    options = DemoOptions(directory=tmp_path / "demo", clients=26, dns=False)
    assert run_demo(options, main, stdout=out, stderr=err) == 0, out.getvalue()
    text = out.getvalue()
    assert "1st attempt" in text and "week later" in text  # the table's header
    assert "count too low" in text and "24/25" in text and "25/25" in text
    # 26 rows do not fit a 25-line terminal: a window follows the machine served.
    assert "machines above" in text
    assert "result          OK" in text
    _assert_nothing_left(json.loads((tmp_path / "demo" / PIDS_FILE).read_text()))
