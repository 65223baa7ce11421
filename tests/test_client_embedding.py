"""docs/embedding.md's example program, run as written against a real host; and the
package's public surface."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import volact
from client_support import PROFILE, RealHost
from services import free_port

DOC = Path(__file__).resolve().parent.parent / "docs" / "embedding.md"


def example_program() -> str:
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    programs = [b for b in blocks if 'if __name__ == "__main__":' in b]
    assert len(programs) == 1, "embedding.md must hold exactly one complete program"
    return programs[0]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RealHost, Path]]:
    base = tmp_path_factory.mktemp("embed")
    profile = base / "profile.json"
    profile.write_text(PROFILE.dumps())
    h = RealHost(base / "host", profile, free_port())
    try:
        yield h, profile
    finally:
        h.stop()


def test_the_documented_example_runs(tmp_path: Path, host: tuple[RealHost, Path]) -> None:
    real, profile = host
    program = tmp_path / "acme_license.py"
    program.write_text(example_program())
    target = f"127.0.0.1:{real.port}"
    for i in range(1, 6):
        proc = subprocess.run(
            [sys.executable, str(program), str(profile), str(tmp_path / f"m{i}"), target, "0.2"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        first = proc.stdout.splitlines()[0]
        assert f"count={i}/5" in first, proc.stdout + proc.stderr
        if i < 5:
            assert proc.returncode == 1 and "state=grace" in first
            assert "not activated yet: count_too_low" in proc.stderr
        else:
            assert proc.returncode == 0, proc.stderr
            assert "state=licensed activated=True" in first
    bad = subprocess.run(
        [sys.executable, str(program), str(tmp_path / "missing.json"), str(tmp_path / "x")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1 and "acme-license:" in bad.stderr


def test_exported_members() -> None:
    assert set(volact.__all__) == {
        "Activation", "BackgroundSchedule", "HostAddress", "LicenseState", "ProductProfile",
        "Status", "VolactError", "__version__",
    }  # fmt: skip
    for name in volact.__all__:
        assert getattr(volact, name) is not None
    assert volact.Activation.__module__ == "volact.client.api"
    assert isinstance(volact.__version__, str)


def test_async_activation_over_real_sockets(tmp_path: Path, host: tuple[RealHost, Path]) -> None:
    import asyncio

    from client_support import SERVER

    real, _ = host
    act = volact.Activation(PROFILE, tmp_path / "a", sku=SERVER.name, vm=False)
    act.set_host(f"127.0.0.1:{real.port}")
    st = asyncio.run(act.activate_async())
    assert st.host == f"127.0.0.1:{real.port}" and st.result in ("ok", "count_too_low")
    assert st.count is not None and st.count >= 1 and st.required_count == 5
    dead = volact.Activation(PROFILE, tmp_path / "d", sku=SERVER.name, vm=False)
    dead.set_host(f"127.0.0.1:{free_port()}")
    st = asyncio.run(dead.activate_async())
    assert not st.activated and "did not answer" in (st.last_error or "")
