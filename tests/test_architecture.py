"""The shape STYLE.md asks for, checked: sans-I/O cores import no I/O, arrows point one way."""

from __future__ import annotations

import ast
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
    "volact.host.client_index",
    "volact.host.malformed",
    "volact.host.config",
    "volact.addresses",
    "volact.host.dns.names",
    "volact.host.dns.servers",
    "volact.host.dns.tsig",
    "volact.host.dns.settings",
    "volact.host.dns.plans",
    "volact.host.dns.outcomes",
    "volact.host.dns.schedule",
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
        if rel.startswith(("host/", "client/")):  # the simulator drives them, never the reverse
            assert not any(m.startswith("volact.sim") for m in mods), rel
        if not rel.startswith("cli/") and rel != "__main__.py":  # the entry point runs it
            assert not any(m == "volact.cli" or m.startswith("volact.cli.") for m in mods), rel


#: Modules that may use the test scaffolding: the demo (and its command) runs on it.
_SCAFFOLDING_USERS = ("testing/", "demo.py", "cli/demo.py")


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_nothing_in_the_product_imports_the_test_scaffolding() -> None:
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(_SCAFFOLDING_USERS):
            continue
        mods = _imports(path)
        assert not any(m == "volact.testing" or m.startswith("volact.testing.") for m in mods), rel
        text = path.read_text()
        for helper in ("make_test_host", "make_host_home", "devservices"):
            assert helper not in text, f"{rel} mentions the test helper {helper}"


def test_no_test_helper_is_importable_through_a_runtime_module() -> None:
    # Import every runtime module for real: none may pull in volact.testing, even
    # indirectly, and none may hand out a test helper as an attribute.
    runtime = sorted(
        _module_name(p)
        for p in SRC.rglob("*.py")
        if not p.relative_to(SRC).as_posix().startswith(_SCAFFOLDING_USERS)
        and p.name != "__main__.py"
    )
    probe = (
        "import importlib, sys\n"
        f"mods = [importlib.import_module(m) for m in {runtime!r}]\n"
        "bad = [m for m in sys.modules if m.split('.')[:2] == ['volact', 'testing']]\n"
        "bad += [m.__name__ + '.' + a for m in mods for a in ('make_test_host', 'make_host_home')\n"
        "        if hasattr(m, a)]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    assert out == "", f"runtime modules reach test helpers: {out}"


def _calls_frame_reader(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    imported = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "volact.wire"
        and any(a.name == "FrameReader" for a in node.names)
        for node in ast.walk(tree)
    )
    called = any(
        isinstance(node, ast.Call) and getattr(node.func, "id", None) == "FrameReader"
        for node in ast.walk(tree)
    )
    return imported and called


@pytest.mark.parametrize("module", ["host/server.py", "client/transport.py"])
def test_host_and_client_cut_frames_with_the_one_frame_reader(module: str) -> None:
    path = SRC / module
    assert _calls_frame_reader(path), f"{module} does not use volact.wire.FrameReader"
    # ...and do not read the length field themselves.
    assert "from_bytes" not in path.read_text(), f"{module} parses frame lengths by hand"


def test_there_is_one_wire_codec() -> None:
    # Message layouts (a struct format of several fields) live in wire.py and
    # documents.py only; a fast twin elsewhere would have to be kept equal by tests.
    assert not (SRC / "host" / "fastwire.py").exists()
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).as_posix() in ("wire.py", "documents.py", "buffer.py"):
            continue
        layouts = re.findall(r"struct\.Struct\(\s*\"[<>!=]?(\w{3,})\"", path.read_text())
        assert not layouts, f"{path} defines wire layouts {layouts}"


def test_the_client_api_loads_no_network_library_until_it_is_used() -> None:
    # `volact client status` runs on every managed machine: reading a state file
    # must not pay for dnspython, httpx or asyncio (they load when first used).
    probe = (
        "import sys, volact.client.api\n"
        "print(','.join(m for m in ('httpx', 'dns.resolver', 'asyncio', 'volact.client.discovery',"
        " 'volact.client.transport') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert out == "", f"volact.client.api pulls in {out}"
