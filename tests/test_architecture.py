"""The shape STYLE.md asks for, checked: sans-I/O cores import no I/O, arrows point one way."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "volact"

SANS_IO = [
    "volact.buffer",
    "volact.wire",
    "volact.documents",
    "volact.keys",
    "volact.catalog",
    "volact.profile",
    "volact.exchanges",
    "volact.host.policy",
    "volact.host.config",
    "volact.host.dns_settings",
    "volact.host.fastwire",
    "volact.client.machine",
    "volact.client.planner",
    "volact.client.state",
    "volact.authority.rules",
]
IO_MODULES = [
    "socket", "asyncio", "sqlite3", "subprocess", "httpx", "sqlalchemy", "dns.query",
    "dns.resolver", "volact.files", "volact.host.store", "volact.client.store",
]  # fmt: skip


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_modules_load_no_io(module: str) -> None:
    probe = (
        f"import sys, {module}\n"
        f"print(','.join(m for m in {IO_MODULES!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert out == "", f"{module} pulls in {out}"


#: How a core would read the clock, the environment or fresh randomness by itself.
_CLOCK_AND_CHANCE = re.compile(
    r"^\s*(import (time|os|datetime|secrets)\b|from (time|os|datetime|secrets) import)"
    r"|\buuid\.uuid4\(|\brandom\.Random\(\)|\bos\.urandom\(",
    re.M,
)


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_modules_take_the_clock_and_randomness_from_their_caller(module: str) -> None:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    found = _CLOCK_AND_CHANCE.search(Path(spec.origin).read_text())
    assert found is None, f"{module}: {found.group(0) if found else ''}"


def _imports(path: Path) -> list[str]:
    return [
        line.split()[1]
        for line in path.read_text().splitlines()
        if line.strip().startswith(("import volact", "from volact"))
    ]


def test_host_and_client_never_import_each_other_and_nothing_imports_the_cli() -> None:
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        mods = _imports(path)
        if rel.startswith("host/"):
            assert not any(m.startswith("volact.client") for m in mods), rel
        if rel.startswith("client/"):
            assert not any(m.startswith("volact.host") for m in mods), rel
        if not rel.startswith("cli/") and rel != "__main__.py":  # the entry point runs it
            assert not any(m == "volact.cli" or m.startswith("volact.cli.") for m in mods), rel
