"""A serving host with its console, a token and some traffic, for the console tests."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from test_host_server import Host, activate, request
from volact.host.config import SERVE_FILE
from volact.testing.hosts import make_host_home

VOLACT = [sys.executable, "-m", "volact"]
#: A workstation name a hostile client could send: it must reach pages escaped.
HOSTILE = "<script>alert(1)</script>&\"'"


@dataclass
class ConsoleHost:
    host: Host
    home: Path
    url: str
    token: str

    def cli_json(self, *args: str) -> Any:
        out = subprocess.run(
            [*VOLACT, "host", *args, "--home", str(self.home), "--json"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return json.loads(out.stdout)


def start(tmp: Path, requests: int = 30) -> ConsoleHost:
    home = tmp / "host"
    profile, _, _ = make_host_home(home)
    out = subprocess.run(
        [*VOLACT, "host", "token", "create", "--home", str(home), "--name", "tests"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    token = out.stdout.strip().splitlines()[-1]
    host = Host(home, ["127.0.0.1:0"], "--console", "127.0.0.1:0")
    try:
        for i in range(requests):
            req = request(profile, i, group="server" if i % 3 else "desktop")
            if i == 7:
                req = dataclasses.replace(req, workstation=HOSTILE)
            activate(host.addr(), req)
        info = json.loads((home / SERVE_FILE).read_text())
    except BaseException:
        host.stop()
        raise
    return ConsoleHost(host, home, f"http://{info['console']}", token)


def cmid(i: int) -> str:
    return str(uuid.UUID(int=(7 << 64) | i))


def secrets_of(c: ConsoleHost) -> list[str]:
    """Strings that must never appear in a page or an answer: token, signing key, host key."""
    found = [c.token]
    pem = (c.home / "host-key.pem").read_text().splitlines()
    found += [line for line in pem if line and not line.startswith("-----")]
    key = c.home / "product-key.txt"
    if key.exists():
        found.append(key.read_text().strip())
    return found
