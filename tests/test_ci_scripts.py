"""`make test` leaves the machine as it found it: .ci/apt-install and .ci/leftovers.py.

.ci/apt-install runs for real against a scratch root (APT_INSTALL_ROOT) with a
stand-in apt-get on PATH that does what installing bind9 does: it finds
policy-rc.d refusing starts, ships a unit, enables it (``systemctl --root``) and adds
a SysV start link. .ci/leftovers.py is checked against a real orphaned server-like
process and a real listening socket.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

CI = Path(__file__).resolve().parent.parent / ".ci"

FAKE_APT_GET = """#!/bin/sh
# A stand-in for apt-get: `install` behaves like a package shipping a service.
set -e
case " $* " in *" update "*) exit 0 ;; esac
root="$APT_INSTALL_ROOT"
# invoke-rc.d asks policy-rc.d before starting anything: record its answer.
if "$root/usr/sbin/policy-rc.d" fakedns start; then echo allowed; else echo "refused $?"; fi \\
    > "$root/policy-answer"
mkdir -p "$root/lib/systemd/system" "$root/etc/rc2.d" "$root/etc/init.d"
printf '[Service]\\nExecStart=/bin/true\\n[Install]\\nWantedBy=multi-user.target\\n' \\
    > "$root/lib/systemd/system/fakedns.service"
systemctl --root="$root" enable fakedns.service 2>/dev/null
printf '#!/bin/sh\\nexit 3\\n' > "$root/etc/init.d/fakedns"
chmod +x "$root/etc/init.d/fakedns"
ln -s ../init.d/fakedns "$root/etc/rc2.d/S01fakedns"
"""


@pytest.mark.skipif(os.geteuid() != 0, reason=".ci/apt-install runs as root (as in CI)")
@pytest.mark.skipif(shutil.which("systemctl") is None, reason="needs systemctl (systemd)")
def test_apt_install_leaves_no_new_service_enabled_and_keeps_the_admins(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/sbin").mkdir(parents=True)
    (root / "lib/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    # A service the administrator enabled before: it must stay enabled.
    (root / "lib/systemd/system/admins.service").write_text(
        "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
    )
    subprocess.run(["systemctl", f"--root={root}", "enable", "admins.service"],
                   check=True, capture_output=True)  # fmt: skip
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(FAKE_APT_GET)
    (bin_dir / "apt-get").chmod(0o755)
    env = dict(os.environ, APT_INSTALL_ROOT=str(root), PATH=f"{bin_dir}:{os.environ['PATH']}")

    done = subprocess.run([str(CI / "apt-install"), "fakedns"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert (root / "policy-answer").read_text().strip() == "refused 101"
    assert not (root / "usr/sbin/policy-rc.d").exists()  # ours, removed again
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert sorted(p.name for p in wants.iterdir()) == ["admins.service"]
    assert not (root / "etc/rc2.d/S01fakedns").exists()
    assert "not starting fakedns.service at boot" in done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason=".ci/apt-install runs as root (as in CI)")
def test_apt_install_keeps_a_policy_rc_d_that_was_there(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/sbin").mkdir(parents=True)
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "apt-get").chmod(0o755)
    env = dict(os.environ, APT_INSTALL_ROOT=str(root), PATH=f"{bin_dir}:{os.environ['PATH']}")
    done = subprocess.run([str(CI / "apt-install"), "x"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert policy.read_text() == "#!/bin/sh\nexit 101\n"


def _leftovers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("leftovers", CI / "leftovers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_leftovers_sees_a_new_listener_on_a_service_port() -> None:
    leftovers = _leftovers()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert leftovers.listeners((port,)) == []
        sock.listen()
        assert leftovers.listeners((port,)) == [f"tcp:{port}"]
    assert leftovers.listeners((port,)) == []


def test_leftovers_sees_an_orphaned_server_until_it_is_stopped(tmp_path: Path) -> None:
    leftovers = _leftovers()
    before = leftovers.snapshot()
    pid_file = tmp_path / "pid"
    # A double fork, as a daemon (or a server a test forgot) ends up: parent is init.
    script = (
        "import os, sys, time\n"
        "if os.fork():\n    os._exit(0)\n"
        "os.setsid()\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    subprocess.run([sys.executable, "-c", script, "volact-leftover-probe"], check=True,
                   timeout=30)  # fmt: skip
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    pid = int(pid_file.read_text())
    try:
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        if ppid != 1:
            pytest.skip(f"orphans are adopted by a subreaper (pid {ppid}) here, not init")
        new = leftovers.new_items(before, leftovers.snapshot())
        assert str(pid) in [item.split()[0] for item in new["orphaned processes"]]
    finally:
        os.kill(pid, 9)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # reaped by init
    after = leftovers.new_items(before, leftovers.snapshot()).get("orphaned processes", [])
    assert str(pid) not in [item.split()[0] for item in after]
