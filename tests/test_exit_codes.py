"""Exit statuses agree across commands (docs/cli.md § Exit status).

2 for a usage error, bad values included; 1 for a runtime failure; 75 for a client
that is not activated yet but still in its grace period. Each case below was once
inconsistent (issue 12, item 8).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from volact.catalog import demo_catalog
from volact.cli import main
from volact.cli.common import EXIT_ERROR, EXIT_GRACE, EXIT_USAGE
from volact.keys import ProductKey
from volact.profile import ProductProfile
from volact.signing import SigningKey
from volact.testing.hosts import make_host_home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    p = tmp_path / "profile.json"
    vendor = SigningKey.from_seed(b"\x11" * 32)
    catalog = demo_catalog()
    gvlks = {s.id: ProductKey.derive_gvlk(vendor.public_key, s.id.bytes).text for s in catalog.skus}
    p.write_text(ProductProfile("Acme", vendor.public_key, catalog, gvlks).dumps())
    return p


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["set", "--activation-interval", "5"], "between 15 and 43200"),
        (["set", "--renewal-interval", "x"], "whole number"),
        (["set", "--read-timeout", "0"], "read_timeout"),
        (["set", "--max-connections", "0"], "max_connections"),
        (["report", "activity", "--days", "-3"], "must be positive"),
        (["activate", "--authority", "127.0.0.1:8088"], "http:// or https://"),
        (["install-key", "ABCDE-ABCDE-ABCDE-ABCDE-ABCDE"], "mistyped"),
    ],
)
def test_bad_values_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    home = tmp_path / "h"
    make_host_home(home)
    before = (home / "host.json").read_bytes()
    cmd = argv[:2] if argv[0] == "report" else argv[:1]
    code, out, err = run(capsys, "host", *cmd, "--home", str(home), *argv[len(cmd):])
    assert code == EXIT_USAGE, err
    assert message in err and out == "" and "Traceback" not in err
    assert (home / "host.json").read_bytes() == before  # nothing changed


def test_export_profile_and_host_activate_agree_on_a_url_without_scheme(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = tmp_path / "authority"
    assert run(capsys, "authority", "init", "--home", str(auth), "--demo-catalog")[0] == 0
    code, _, err = run(capsys, "authority", "export-profile", "--home", str(auth), "--out",
                       str(tmp_path / "p.json"), "--authority-url", "127.0.0.1:8088")  # fmt: skip
    assert code == EXIT_USAGE and "http" in err
    home = tmp_path / "h"
    make_host_home(home)
    code, _, err = run(capsys, "host", "activate", "--home", str(home),
                       "--authority", "127.0.0.1:8088")  # fmt: skip
    assert code == EXIT_USAGE and "http" in err


def test_client_bad_values_are_usage_errors_and_grace_has_its_own_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], profile_file: Path
) -> None:
    home = str(tmp_path / "c")
    code, _, err = run(capsys, "client", "init", "--home", home, "--profile", str(profile_file),
                       "--sku", "Acme Server 2026 Standard")  # fmt: skip
    assert code == 0, err
    code, _, err = run(capsys, "client", "activate", "--home", home, "--authority", "ftp://x")
    assert code == EXIT_USAGE and "http" in err
    code, _, err = run(capsys, "client", "set-host", "--home", home, "[::1")
    assert code == EXIT_USAGE and "unclosed" in err
    # Nothing listens on port 9 of loopback: the attempt fails, the machine stays in grace.
    assert run(capsys, "client", "set-host", "--home", home, "127.0.0.1:9")[0] == 0
    code, _, err = run(capsys, "client", "activate", "--home", home)
    assert code == EXIT_GRACE and "did not answer" in err
    # A home that does not exist is a runtime failure, not a usage error.
    code, _, err = run(capsys, "client", "activate", "--home", str(tmp_path / "none"))
    assert code == EXIT_ERROR and "client init" in err
