"""Host activation against the real authority: offline by file and online over HTTP.

Uses the authority's own CLI and its `volact authority serve` process (helpers
from ``test_authority_service``); the host side is ``volact host ...``.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from test_authority_service import cli_json, init_home, issue, start
from volact.cli import main
from volact.keys import KeyKind, ProductKey


def test_offline_then_online_activation_with_the_authority(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = init_home(tmp_path, capsys)
    profile = tmp_path / "profile.json"
    cli_json(capsys, "authority", "export-profile", "--home", str(auth), "--out", str(profile))
    host_key = issue(auth, capsys, "--kind", "host", "--group", "server")

    # Offline: request file → authority → response file.
    h1 = tmp_path / "h1"
    cli_json(capsys, "host", "init", "--home", str(h1), "--profile", str(profile))
    cli_json(capsys, "host", "install-key", "--home", str(h1), host_key)
    req, resp = tmp_path / "req.json", tmp_path / "resp.json"
    cli_json(capsys, "host", "activate", "--home", str(h1), "--offline-request", str(req))
    cli_json(
        capsys, "authority", "activate-host", "--home", str(auth), "--request", str(req),
        "--out", str(resp),
    )  # fmt: skip
    got = cli_json(capsys, "host", "activate", "--home", str(h1), "--offline-response", str(resp))
    assert got["activated"] is True
    assert set(got["licensed_groups"]) >= {"server", "desktop"}

    # Online: a second host with the same host key, over HTTP.
    server = start(auth)
    try:
        h2 = tmp_path / "h2"
        cli_json(capsys, "host", "init", "--home", str(h2), "--profile", str(profile))
        cli_json(capsys, "host", "install-key", "--home", str(h2), host_key)
        got = cli_json(capsys, "host", "activate", "--home", str(h2), "--authority", server.url)
        assert got["activated"] is True
        st = cli_json(capsys, "host", "status", "--home", str(h2))
        assert st["activated"] is True and st["license_state"] == "valid"

        # A well-formed host key that the authority never issued is refused by it,
        # with its problem details, and nothing is installed.
        h3 = tmp_path / "h3"
        cli_json(capsys, "host", "init", "--home", str(h3), "--profile", str(profile))
        unknown = ProductKey.generate(KeyKind.HOST, secrets.token_bytes(12)).text
        cli_json(capsys, "host", "install-key", "--home", str(h3), unknown)
        code = main(["host", "activate", "--home", str(h3), "--authority", server.url])
        err = capsys.readouterr().err
        assert code == 1 and "the authority refused" in err
        assert not (h3 / "host-license.bin").exists()
    finally:
        server.stop()
