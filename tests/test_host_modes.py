"""File modes of a host home and the monitoring group (issue 12 item 3, issue 11 item 9).

The home is owner-only (0700) or 2750 for a monitoring group; secrets are 0600, the
rest 0640; the offline activation request (it holds the host key) is 0600. A member
of the monitoring group runs the read-only commands as another user, against a
stopped and against a serving host, without reading a secret; a user outside the
group is refused and ``alerts --exit-code`` says UNKNOWN (3).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from volact.cli import main
from volact.keys import KeyKind, ProductKey
from volact.testing.hosts import make_host_home
from volact.testing.processes import free_port

READ_ONLY_COMMANDS = (
    ["status", "--json"],
    ["alerts", "--json"],
    ["report", "licensing", "--json"],
    ["report", "activity", "--json"],
    ["events", "--json"],
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_modes_of_a_new_home_and_of_the_offline_request(tmp_path: Path) -> None:
    home = tmp_path / "h"
    make_host_home(home, activated=False)
    key = ProductKey.generate(KeyKind.HOST, secrets.token_bytes(12))
    assert main(["host", "install-key", "--home", str(home), key.text]) == 0
    request = tmp_path / "request.json"
    assert main(["host", "activate", "--home", str(home), "--offline-request", str(request)]) == 0
    assert key.text in request.read_text()
    assert _mode(request) == 0o600
    assert _mode(home) == 0o700
    assert _mode(home / "host-key.pem") == 0o600
    assert _mode(home / "product-key.txt") == 0o600
    for name in ("host.json", "profile.json", "store.sqlite"):
        assert _mode(home / name) & 0o077 == _mode(home / name) & 0o040, name  # group r at most
        assert not _mode(home / name) & 0o007, name  # nothing for others


def test_monitor_group_switches_on_and_off(tmp_path: Path) -> None:
    home = tmp_path / "h"
    make_host_home(home)
    group = str(os.getgid())
    assert main(["host", "set", "--home", str(home), "--monitor-group", group]) == 0
    assert _mode(home) == 0o2750
    assert _mode(home / "store.sqlite") == 0o640
    assert _mode(home / "host-key.pem") == 0o600
    assert main(["host", "set", "--home", str(home), "--monitor-group", "none"]) == 0
    assert _mode(home) == 0o700
    assert main(["host", "set", "--home", str(home), "--monitor-group", "no-such-group-x"]) == 1


@pytest.fixture
def users() -> Iterator[tuple[str, str, str]]:
    """A temporary group, a user in it and a user outside it; removed afterwards."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("runuser"):
        pytest.skip("needs root with useradd and runuser to create a temporary reader")
    suffix = secrets.token_hex(3)
    group, member, outsider = f"vmon{suffix}", f"vmem{suffix}", f"vout{suffix}"
    subprocess.run(["groupadd", group], check=True)
    try:
        for user, extra in ((member, ["-G", group]), (outsider, [])):
            subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", *extra, user],
                           check=True)  # fmt: skip
        yield group, member, outsider
    finally:
        for user in (member, outsider):
            subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)


def _as(user: str, home: Path, *argv: str) -> tuple[int, str, str]:
    """``volact host ARGV --home HOME`` run by ``user``, in a forked child.

    Fork, not exec: the interpreter may live where other users cannot reach (a
    pyenv under /root), so the child keeps this process's loaded modules, drops to
    the user's ids and calls ``main``.
    """
    cmd = argv[:2] if argv[0] == "report" else argv[:1]
    full = ["host", *cmd, "--home", str(home), *argv[len(cmd):]]
    pw = pwd.getpwnam(user)
    groups = os.getgrouplist(user, pw.pw_gid)
    outs = [os.pipe(), os.pipe()]
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.dup2(outs[0][1], 1)
            os.dup2(outs[1][1], 2)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            os.setgroups(groups)
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            code = main(full)
        except BaseException as exc:  # report it in the parent's assertion
            sys.stderr.write(f"child failed: {exc!r}")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    for _, w in outs:
        os.close(w)
    out, err = (os.fdopen(r, "rb").read().decode() for r, _ in outs)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out, err


def _check_reader(home: Path, member: str, outsider: str) -> None:
    for argv in READ_ONLY_COMMANDS:
        code, out, err = _as(member, home, *argv)
        assert code == 0, (argv, err)
        obj = json.loads(out)
        if argv[0] == "status":
            assert obj["host_key"] is None and obj["monitor_group"]  # the secret is not read
    code, out, err = _as(outsider, home, "status")
    assert code == 1 and "Permission denied" in err and "Traceback" not in err
    code, out, err = _as(outsider, home, "alerts", "--exit-code")
    assert code == 3 and out.startswith("UNKNOWN")
    # The secrets stay closed to the group.
    for secret in ("host-key.pem", "product-key.txt"):
        proc = subprocess.run(["runuser", "-u", member, "--", "cat", str(home / secret)],
                              capture_output=True, text=True)  # fmt: skip
        assert proc.returncode != 0 and "Permission denied" in proc.stderr


def test_a_monitoring_group_member_reads_without_secrets(users: tuple[str, str, str]) -> None:
    group, member, outsider = users
    top = Path(tempfile.mkdtemp(prefix="volact-modes-"))
    try:
        top.chmod(0o755)  # the test's own folder; the home inside is what is checked
        home = top / "host"
        make_host_home(home, port=free_port())
        key = ProductKey.generate(KeyKind.HOST, secrets.token_bytes(12))
        assert main(["host", "install-key", "--home", str(home), key.text]) == 0
        assert main(["host", "set", "--home", str(home), "--monitor-group", group]) == 0
        _check_reader(home, member, outsider)  # stopped: no -wal file, read as immutable
        proc = subprocess.Popen(
            [sys.executable, "-m", "volact", "host", "serve", "--home", str(home),
             "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert "listening" in line, line
            assert (home / "store.sqlite-wal").exists()
            _check_reader(home, member, outsider)  # serving: read through the WAL
            status = json.loads(_as(member, home, "status", "--json")[1])
            assert status["serving"] is True  # another user's pid still counts as alive
        finally:
            proc.terminate()
            proc.wait(20)
    finally:
        shutil.rmtree(top, ignore_errors=True)
