#!/usr/bin/env python3
"""What a test run left behind on the machine: `make test` must leave none of it.

    python3 .ci/leftovers.py snapshot FILE    before the run (.ci/run does this)
    python3 .ci/leftovers.py compare FILE     after: print what is new, exit 1 if any

Three things count, each only when it was not there before the run:

* a service enabled to start at boot (a systemd "wants" link or a SysV start link
  under /etc), as installing bind9 or postgresql would leave without .ci/apt-install;
* a socket listening on a port such services use (DNS 53, rndc 953, PostgreSQL
  5432, volact 1688);
* an orphaned process (its parent is gone) whose command line names named,
  postgres or volact: a server a test started and did not stop.

The tests' own servers listen on free loopback ports while they run; other people's
processes on a shared machine are not orphans of this run, so they do not count.
Standard library only: it runs before the venv exists.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from pathlib import Path

SERVICE_PORTS = (53, 953, 5432, 1688)
PROGRAMS = ("named", "postgres", "volact")


def boot_links(root: str = "") -> list[str]:
    links = glob.glob(f"{root}/etc/systemd/system/*.wants/*")
    links += glob.glob(f"{root}/etc/rc[0-6S].d/S*")
    return sorted(links)


def listeners(ports: tuple[int, ...] = SERVICE_PORTS) -> list[str]:
    """``proto:port`` for every listening TCP or bound UDP socket on ``ports``."""
    found = set()
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            # TCP LISTEN is state 0A; an unconnected UDP socket is 07 with no peer.
            listening = fields[3] == "0A" if proto.startswith("tcp") else (
                fields[3] == "07" and fields[2].rsplit(":", 1)[1] == "0000"
            )
            if listening and port in ports:
                found.add(f"{proto}:{port}")
    return sorted(found)


def orphans(programs: tuple[str, ...] = PROGRAMS) -> list[str]:
    """``pid command`` for processes whose parent is init and that run ``programs``."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        pid = stat.split("/")[2]
        try:
            ppid = int(Path(stat).read_text().rsplit(")", 1)[1].split()[1])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        command = cmdline.decode(errors="replace").strip()
        if ppid == 1 and any(p in command for p in programs):
            found.append(f"{pid} {command[:200]}")
    return sorted(found)


def snapshot() -> dict[str, list[str]]:
    return {
        "enabled at boot": boot_links(),
        "listening": listeners(),
        "orphaned processes": orphans(),
    }


def new_items(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, list[str]]:
    return {
        kind: sorted(set(items) - set(before.get(kind, ())))
        for kind, items in after.items()
        if set(items) - set(before.get(kind, ()))
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("snapshot", "compare"):
        print("usage: leftovers.py snapshot|compare FILE", file=sys.stderr)
        return 2
    command, path = argv
    if command == "snapshot":
        Path(path).write_text(json.dumps(snapshot()))
        return 0
    left = new_items(json.loads(Path(path).read_text()), snapshot())
    for kind, items in left.items():
        for item in items:
            print(f"leftovers: {kind}: {item}")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
