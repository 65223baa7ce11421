"""Installs by role: the wheel, its dependencies per extra, and a client-only install.

The wheel is built once per module (``pip wheel``, no network: the build backend
comes from the configured index or cache). Dependency sets are checked with pip's
resolver (``pip install --dry-run --report``) against the real index, so a role
library pulled in indirectly would show. The slow test installs the wheel without
extras into a fresh venv and runs commands as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: What the roles bring; none of it belongs in a client-only install.
ROLE_PACKAGES = {
    "fastapi", "starlette", "pydantic", "uvicorn", "sqlalchemy", "psycopg",
    "psycopg-binary", "prometheus-client", "uvloop", "rich", "cryptography",
}  # fmt: skip
BASE_PACKAGES = {"volact", "pynacl", "dnspython", "httpx"}


def _pip(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("dist")
    done = _pip("wheel", "--no-deps", "-q", "-w", str(out), str(ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = out.glob("volact-*.whl")
    yield path


def _resolved(requirement: str, report: Path) -> set[str]:
    done = _pip(
        "install", "--dry-run", "--ignore-installed", "-q", "--report", str(report), requirement
    )
    assert done.returncode == 0, done.stderr[-2000:]
    install = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower().replace("_", "-") for item in install}


def test_the_wheel_ships_no_test_helpers_and_declares_the_roles(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (metadata,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        requires = [
            line.removeprefix("Requires-Dist: ")
            for line in zf.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist: ")
        ]
    assert "volact/cli/__init__.py" in names and "volact/py.typed" in names
    assert not [n for n in names if n.startswith(("volact/testing/", "tests/"))]
    unconditional = {
        r.split(">")[0].split("[")[0].strip().lower() for r in requires if ";" not in r
    }
    assert unconditional == BASE_PACKAGES - {"volact"}
    for extra in ("host", "authority", "demo", "all", "dev"):
        assert any(f'extra == "{extra}"' in r for r in requires), extra


def test_a_client_install_resolves_no_role_library(wheel: Path, tmp_path: Path) -> None:
    base = _resolved(str(wheel), tmp_path / "base.json")
    assert base >= BASE_PACKAGES
    assert not base & ROLE_PACKAGES, sorted(base & ROLE_PACKAGES)
    host = _resolved(f"volact[host] @ {wheel.as_uri()}", tmp_path / "host.json")
    assert {"prometheus-client", "uvloop"} <= host
    # The host's console (docs/console.md) is FastAPI on uvicorn: those two, no more.
    assert {"fastapi", "uvicorn"} <= host
    assert not host & {"sqlalchemy", "psycopg", "cryptography"}


@pytest.mark.slow
def test_a_fresh_client_only_venv_runs_the_client_and_names_missing_extras(
    wheel: Path, tmp_path: Path
) -> None:
    from volact.cli import main

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(wheel)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    installed = {p["name"].lower().replace("_", "-") for p in json.loads(listed)}
    assert not installed & ROLE_PACKAGES, sorted(installed & ROLE_PACKAGES)
    probe = "import importlib.util as u; print(u.find_spec('volact.testing'))"
    found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                           timeout=60, check=True).stdout.strip()  # fmt: skip
    assert found == "None"  # the test helpers stayed out

    # A product profile, made with this (full) install.
    assert main(["authority", "init", "--home", str(tmp_path / "auth"), "--demo-catalog"]) == 0
    profile = tmp_path / "profile.json"
    assert main(["authority", "export-profile", "--home", str(tmp_path / "auth"),
                 "--out", str(profile)]) == 0  # fmt: skip

    volact = env_dir / "bin" / "volact"

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(volact), *argv], capture_output=True, text=True, timeout=120, check=False
        )

    client = str(tmp_path / "client")
    sku = "Acme Desktop 2026 Professional"
    for argv in (
        ["--version"],
        ["client", "init", "--home", client, "--profile", str(profile), "--sku", sku],
        ["client", "status", "--home", client, "--json"],
        ["mak", "--help"],
    ):
        done = run(*argv)
        assert done.returncode == 0, (argv, done.stderr)
    assert json.loads(run("client", "status", "--home", client, "--json").stdout)["state"]

    for argv, extra in (
        (["host", "serve", "--home", str(tmp_path / "host")], "host"),
        (["authority", "init", "--home", str(tmp_path / "auth2")], "authority"),
        (["demo", "--no-dns"], "demo"),
    ):
        done = run(*argv)
        assert done.returncode == 1, (argv, done.stdout, done.stderr)
        assert f"pip install 'volact[{extra}]'" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
