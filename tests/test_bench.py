"""`volact bench` against a real host: bounded runs and the ``--json`` fields."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_host_server import Host
from volact.cli import main
from volact.testing.hosts import make_host_home


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Host, Path]]:
    home = tmp_path / "host"
    profile, _, _ = make_host_home(home)
    prof = tmp_path / "profile.json"
    prof.write_text(profile.dumps())
    h = Host(home, ["127.0.0.1:0"])
    yield h, prof
    h.stop()


def test_bench_json(served: tuple[Host, Path], capsys: pytest.CaptureFixture[str]) -> None:
    host, prof = served
    ip, port = host.addr()
    code = main(
        [
            "bench",
            "--target",
            f"{ip}:{port}",
            "--profile",
            str(prof),
            "--sku",
            "Datacenter",
            "--clients",
            "40",
            "--requests",
            "200",
            "--concurrency",
            "8",
            "--processes",
            "2",
            "--host-pid",
            str(host.proc.pid),
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["exchanges"] == 200 and out["errors"] == 0
    # Machines 1-4 of the first pass are refused; everything after is granted.
    assert out["results"]["ok"] + out["results"].get("count_too_low", 0) == 200
    assert 1 <= out["results"].get("count_too_low", 0) <= 8
    assert out["max_request_bytes"] <= 130 and out["max_reply_bytes"] == 179
    assert out["p50_ms"] > 0 and out["p99_ms"] >= out["p50_ms"]
    assert out["exchanges_per_s"] > 0 and out["host_cpu_us_per_exchange"] > 0


def test_bench_counts_errors_not_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "h"
    profile, _, _ = make_host_home(home)
    prof = tmp_path / "profile.json"
    prof.write_text(profile.dumps())
    # Nobody listens on this port: every exchange is an error, bounded by the count.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(
        [
            "bench",
            "--target",
            f"127.0.0.1:{port}",
            "--profile",
            str(prof),
            "--clients",
            "5",
            "--requests",
            "10",
            "--json",
            "--fail-on-error",
        ]
    )
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert code == 1 and out["errors"] == 10 and out["exchanges"] == 0 and out["results"] == {}
    assert "10 exchange(s) got no valid reply" in captured.err


def test_bench_refuses_other_machines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prof = tmp_path / "profile.json"
    profile, _, _ = make_host_home(tmp_path / "h")
    prof.write_text(profile.dumps())
    code = main(
        [
            "bench",
            "--target",
            "192.0.2.1:1688",
            "--profile",
            str(prof),
            "--clients",
            "1",
            "--requests",
            "1",
        ]
    )
    assert code == 2 and "only targets this machine" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--processes", "100000"], "--processes is at most"),
        (["--concurrency", "1000000"], "--concurrency is at most"),
        (["--timeout", "0"], "--timeout must be"),
        (["--timeout", "-1"], "--timeout must be"),
        (["--host-pid", "999999999"], "no such process"),
    ],
)
def test_bench_refuses_unbounded_or_impossible_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    prof = tmp_path / "profile.json"
    profile, _, _ = make_host_home(tmp_path / "h")
    prof.write_text(profile.dumps())
    argv = ["bench", "--target", "127.0.0.1:9", "--profile", str(prof), "--clients", "1",
            "--requests", "1", *extra]  # fmt: skip
    assert main(argv) == 2
    assert message in capsys.readouterr().err
