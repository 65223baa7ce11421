"""The `volact` entry point: exit codes, one-line errors, no traceback for a person."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from volact.cli import EXIT_INTERNAL, GROUPS, build_parser, main


def test_every_group_is_registered() -> None:
    help_text = build_parser().format_help()
    for group in GROUPS:
        assert group in help_text


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["no-such-group"]) == 2
    assert main(["host", "status"]) == 2  # --home is required
    assert "--home" in capsys.readouterr().err


def test_volact_errors_are_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["client", "status", "--home", str(tmp_path / "none"), "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("volact: error: ") and err.count("\n") == 1


def test_a_bug_is_reported_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import volact.cli.host as host_cli

    def boom(args: object) -> int:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(host_cli, "_status", boom)
    monkeypatch.delenv("VOLACT_DEBUG", raising=False)
    assert main(["host", "status", "--home", "x"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error (RuntimeError: simulated bug)" in err and "Traceback" not in err
    monkeypatch.setenv("VOLACT_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["host", "status", "--home", "x"])


def test_json_output_is_one_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "auth"
    assert main(["authority", "init", "--home", str(home), "--demo-catalog", "--json"]) == 0
    json.loads(capsys.readouterr().out)
    for argv in (
        ["authority", "show", "--home", str(home), "--json"],
        ["authority", "issue-key", "--home", str(home), "--kind", "host", "--group", "server",
         "--json"],
        ["authority", "keys", "--home", str(home), "--json"],
    ):
        assert main(argv) == 0
        obj = json.loads(capsys.readouterr().out)
        assert isinstance(obj, dict | list)
