"""The README's hand tour runs as written (issue 12 item 6).

The ``sh`` blocks of README.md's tour section are taken from the file (never copied
here), joined in order and run by one ``bash -e -o pipefail`` in an empty directory,
with this venv's ``volact`` first on PATH. Then the directory is checked: the
machines activated and renewed, DNS was used, and nothing the tour started is left
running. It needs BIND (named, tsig-keygen, dig) and the ports 8088, 1688 and 5353
of loopback, which the tour names.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
PORTS = (8088, 1688, 5353)


def tour_blocks() -> list[str]:
    text = README.read_text()
    start = text.index("## A five-minute tour")
    end = text.index("\n## ", start + 1)
    return re.findall(r"^```sh\n(.*?)^```", text[start:end], flags=re.S | re.M)


def _missing_tools() -> list[str]:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [t for t in ("named", "tsig-keygen", "dig") if shutil.which(t, path=path) is None]


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_the_tour_has_every_step() -> None:
    blocks = tour_blocks()
    assert len(blocks) == 8  # set-up, steps 1-6, stop
    joined = "\n".join(blocks)
    for needle in ("tsig-keygen", "named -c", "host dns", "--clock-offset", "client agent",
                   "client doctor", "kill "):  # fmt: skip
        assert needle in joined, needle


@pytest.mark.timeout(1200)  # about 160 commands: a minute on a quiet machine, more under load
def test_the_readme_tour_runs_by_hand(tmp_path: Path) -> None:
    missing = _missing_tools()
    ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    if missing:
        if ci:
            pytest.fail(f"the tour needs {missing} (make deps)")
        pytest.skip(f"the tour needs {missing} (make deps)")
    busy = [p for p in PORTS if _port_busy(p)]
    if busy:
        pytest.skip(f"the tour's loopback ports {busy} are in use by something else")
    script = tmp_path / "tour.sh"
    script.write_text("\n".join(tour_blocks()))
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    env["PATH"] = f"{Path(sys.prefix) / 'bin'}:{env.get('PATH', '')}:/usr/sbin:/sbin"
    log = tmp_path / "tour.log"
    with log.open("w") as sink:  # a file, not a pipe: servers the tour starts inherit it
        proc = subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", str(script)], cwd=work, env=env,
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            proc.wait(timeout=900)  # about 160 commands; seconds on a quiet machine
        finally:
            # Whatever happened, nothing the tour started may survive it: its session
            # (authority, host) and named, which daemonizes into a session of its own.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            pid_file = work / "named" / "named.pid"
            if pid_file.exists():
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
    out = log.read_text()
    assert proc.returncode == 0, out[-4000:]
    # Step 4: 24 first attempts in grace (exit 75), then everyone activated.
    assert out.count("in grace, exit 75") == 24, out[-4000:]
    assert "0 0 1688 kms1.demo.example." in out
    assert "all checks passed" in out
    st = json.loads(subprocess.run(
        [str(Path(sys.prefix) / "bin" / "volact"), "client", "status", "--home",
         str(work / "pc-01"), "--json"], capture_output=True, text=True, check=True).stdout)
    assert st["activated"] is True and st["count"] == 30
    # Step 5: 30 renewals a week later; step 6: the MAK machine.
    host_events = subprocess.run(
        [str(Path(sys.prefix) / "bin" / "volact"), "host", "report", "activity", "--home",
         str(work / "host"), "--json"], capture_output=True, text=True, check=True).stdout
    rows = json.loads(host_events)["rows"]
    # 30 activations; 30 renewals a week later, and one more: the client doctor of step 4
    # sends pc-01's real (renewal) request.
    assert sum(r["activations"] for r in rows) == 30
    assert sum(r["renewals"] for r in rows) == 31
    assert "activated by MAK" in out or "valid until" in out
    # Step 7 stopped everything: the ports are free again.
    assert not [p for p in PORTS if _port_busy(p)]
