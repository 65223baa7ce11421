"""`volact bench` against a real host: bounded runs and the ``--json`` fields."""

from __future__ import annotations

import json
import os
import time
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
    h = Host(home, ["127.0.0.1:0"], "--bench")
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
            "--host-home",
            str(host.home),
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


def test_bench_paced_run(served: tuple[Host, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A fixed offered load (--rate) still runs exactly the requests asked for, all answered."""
    host, prof = served
    ip, port = host.addr()
    argv = ["bench", "--target", f"{ip}:{port}", "--profile", str(prof), "--sku", "Datacenter",
            "--clients", "20", "--requests", "60", "--concurrency", "4", "--rate", "400",
            "--host-home", str(host.home), "--json"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exchanges"] == 60 and out["errors"] == 0
    assert sum(out["results"].values()) == 60


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
    # A bench-mode host that stopped listening (its serve.json says where it was).
    (home / "serve.json").write_text(json.dumps({"pid": os.getpid(), "bench": True,
                                                 "ports": [port], "addresses": []}))  # fmt: skip
    code = main(
        [
            "bench",
            "--host-home",
            str(home),
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
            "--host-home",
            str(tmp_path / "h"),
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
        (["--rate", "0"], "--rate must be"),
        (["--rate", "-5"], "--rate must be"),
    ],
)
def test_bench_refuses_unbounded_or_impossible_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    prof = tmp_path / "profile.json"
    profile, _, _ = make_host_home(tmp_path / "h")
    prof.write_text(profile.dumps())
    argv = ["bench", "--host-home", str(tmp_path / "h"), "--target", "127.0.0.1:9",
            "--profile", str(prof), "--clients", "1", "--requests", "1", *extra]  # fmt: skip
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_bench_never_changes_a_real_host_below_its_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12: a 50-machine bench once left a 31-machine host at count 81."""
    from test_host_server import exchange, request
    from volact import wire
    from volact.host.admin import licensing, status

    home = tmp_path / "host"
    profile, _, _ = make_host_home(home)
    prof = tmp_path / "profile.json"
    prof.write_text(profile.dumps())
    real = Host(home, ["127.0.0.1:0"])
    try:  # three real desktops: below the desktop threshold of 25
        for i in range(1, 4):
            reply = wire.decode(exchange(real.addr(), wire.encode(request(profile, i))))
            assert isinstance(reply, wire.ActivateReply) and reply.count == i
        argv = ["bench", "--host-home", str(home), "--target", f"127.0.0.1:{real.addr()[1]}",
                "--profile", str(prof), "--sku", "Professional", "--clients", "50",
                "--requests", "100"]  # fmt: skip
        assert main(argv) == 2  # refused: the host is not in bench mode
        assert "not in bench mode" in capsys.readouterr().err
    finally:
        assert real.stop() == 0
    before = status(home, now=int(time.time()))
    before_clients = licensing(home, now=before["installed_at"] + 1)["summary"]
    before_store = (home / "store.sqlite").read_bytes()

    bench = Host(home, ["127.0.0.1:0"], "--bench")
    try:
        argv = ["bench", "--host-home", str(home), "--target", f"127.0.0.1:{bench.addr()[1]}",
                "--profile", str(prof), "--sku", "Professional", "--clients", "50",
                "--requests", "100", "--json"]  # fmt: skip
        assert main(argv) == 0
        out = json.loads(capsys.readouterr().out)
        # The bench host counted its 50 machines (and granted past 25) in its scratch store.
        assert out["errors"] == 0 and out["results"]["ok"] > 0
        assert list(home.glob("bench-store-*"))
    finally:
        assert bench.stop() == 0
    after = status(home, now=int(time.time()))
    assert after["count"] == before["count"] == 3
    assert after["known_clients"] == 3 and after["groups_ready"]["desktop"] is False
    assert after["requests_by_result"] == before["requests_by_result"]
    assert licensing(home, now=before["installed_at"] + 1)["summary"] == before_clients
    assert (home / "store.sqlite").read_bytes() == before_store
    assert not list(home.glob("bench-store-*"))  # the scratch store is gone
