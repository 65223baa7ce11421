"""The `volact` entry point: exit codes, one-line errors, no traceback for a person."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
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


def test_each_group_help_line_is_the_one_its_module_registers() -> None:
    """`volact --help` lists groups without importing them: the lines must agree."""
    top = build_parser().format_help()
    for group in GROUPS:
        assert build_parser(group).format_help() == top, group
    assert build_parser("*").format_help() == top


def _modules_after(argv: list[str]) -> set[str]:
    """The modules a fresh interpreter has loaded after ``main(argv)``."""
    probe = (
        "import sys\n"
        "from volact.cli import main\n"
        f"main({argv!r})\n"
        "print('\\n'.join(sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return set(done.stdout.split())


HEAVY = ("asyncio", "httpx", "dns", "nacl", "cryptography", "sqlalchemy", "fastapi",
         "uvicorn", "prometheus_client", "rich", "volact.cli.")  # fmt: skip


def test_version_and_help_import_no_group_and_no_library() -> None:
    for argv in (["--version"], ["--help"], []):
        loaded = _modules_after(argv)
        heavy = sorted(m for m in loaded if m.startswith(HEAVY) and m != "volact.cli.common")
        assert heavy == [], (argv, heavy)


def test_client_status_imports_neither_the_network_nor_other_roles(tmp_path: Path) -> None:
    assert main(["authority", "init", "--home", str(tmp_path / "a"), "--demo-catalog"]) == 0
    profile = str(tmp_path / "profile.json")
    assert main(["authority", "export-profile", "--home", str(tmp_path / "a"), "--out",
                 profile]) == 0  # fmt: skip
    home = str(tmp_path / "c")
    assert main(["client", "init", "--home", home, "--profile", profile, "--sku",
                 "Acme Desktop 2026 Professional"]) == 0  # fmt: skip
    loaded = _modules_after(["client", "status", "--home", home])
    assert "volact.client.store" in loaded and "nacl" in loaded
    unwanted = ("asyncio", "httpx", "dns", "cryptography", "sqlalchemy", "fastapi",
                "volact.host", "volact.authority", "volact.cli.host", "volact.cli.authority")
    assert sorted(m for m in loaded if m.startswith(unwanted)) == []  # fmt: skip


@pytest.mark.parametrize(
    ("module", "argv", "extra"),
    [
        ("prometheus_client", ["host", "serve", "--home", "HOME"], "host"),
        ("sqlalchemy", ["authority", "init", "--home", "HOME"], "authority"),
        ("rich", ["demo", "--no-dns"], "demo"),
        ("fastapi", ["demo"], "demo"),
    ],
)
def test_a_missing_extra_is_named_in_one_line(
    module: str, argv: list[str], extra: str, tmp_path: Path
) -> None:
    """As without the extra: the module is made unimportable in a fresh interpreter."""
    argv = [str(tmp_path / "home") if a == "HOME" else a for a in argv]
    probe = (
        "import sys\n"
        f"sys.modules[{module!r}] = None  # what an install without it looks like\n"
        "from volact.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"volact: error: `volact {' '.join(a for a in argv[:2] if not a.startswith('-'))}` "
        f"needs the optional '{extra}' dependencies ({module} is not installed): "
        f"pip install 'volact[{extra}]'\n"
    )
    assert not (tmp_path / "home").exists()  # nothing started, nothing written


def test_the_demo_without_the_test_helpers_says_to_use_a_source_checkout() -> None:
    """A wheel install with every extra has no volact.testing, which the demo uses."""
    probe = (
        "import sys\n"
        "sys.modules['volact.testing'] = None  # as in a wheel install\n"
        "from volact.cli import main\n"
        "sys.exit(main(['demo', '--no-dns']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("volact: error: `volact demo` needs volact's test helpers")
    assert "source checkout" in done.stderr and done.stderr.count("\n") == 1


def test_a_missing_module_that_is_no_extra_is_a_bug(capsys: pytest.CaptureFixture[str]) -> None:
    from volact.cli import missing_extra_message

    assert missing_extra_message(ModuleNotFoundError("x", name="volact.nope"), "volact x") is None
    message = missing_extra_message(
        ModuleNotFoundError("x", name="volact.testing.services"), "volact demo"
    )
    assert message is not None and "source checkout" in message


LAUNCH = """\
import os, re, runpy, sys  # what the interpreter or the console script load first
import volact  # the package imports nothing; the entry point's code runs next
via_runpy = bool(os.environ.get("VIA_RUNPY"))
sys.argv = ["volact", *sys.argv[1:]]
os.write(1, b"R")
if via_runpy:  # python -m volact
    runpy.run_module("volact", run_name="__main__", alter_sys=True)
else:  # the console script: `from volact.__main__ import run; run()`
    from volact.__main__ import run
    run()
"""


def _before_volact(traceback: str) -> bool:
    """A KeyboardInterrupt raised before the entry point's first line ran.

    Only the import machinery's frames, under the launcher's import of the entry
    point: Python finding and reading ``volact/__main__`` (well under a millisecond),
    which no code of volact's can guard, like the interpreter's own start-up.
    """
    frames = [line for line in traceback.splitlines() if line.lstrip().startswith("File ")]
    return bool(frames) and all('"<string>"' in f or '"<frozen ' in f for f in frames)


def test_ctrl_c_at_any_early_moment_exits_130_without_a_traceback(tmp_path: Path) -> None:
    """SIGINT at random moments while a command imports, parses and runs.

    The clock starts when the entry point is about to load (the launcher writes one
    byte after ``import volact``, which imports nothing): the interpreter's own
    start-up before that prints its own traceback even for ``python -c pass``.
    """
    # An installed wheel has its bytecode compiled by pip; a fresh source checkout does
    # not, and a Ctrl-C inside the interpreter's own write of a .pyc fails in CPython
    # (seen on a fresh CI clone), not in volact: compile first, as an install does.
    import compileall

    import volact

    assert compileall.compile_dir(Path(volact.__file__).parent, quiet=1)
    rng = random.Random(12)
    commands = [
        ["--version"],
        ["client", "status", "--home", str(tmp_path / "none")],
        ["host", "status", "--home", str(tmp_path / "none")],
        ["authority", "--help"],
        ["demo", "--help"],
    ]
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + 90
    for i in range(40):
        if time.monotonic() > deadline:
            break
        argv = commands[i % len(commands)]
        env = dict(os.environ, VIA_RUNPY="1" if i % 3 == 0 else "")
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *argv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdout.read(1) == b"R"
        time.sleep(rng.uniform(0, 0.4) ** 2)  # most of them in the first 50 ms
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        text = err.decode(errors="replace")
        if "Traceback" in text and _before_volact(text):
            outcomes["before volact's first line"] += 1
            continue
        assert "Traceback" not in text and "KeyboardInterrupt" not in text, (argv, text)
        # 0 or 2: done before the signal; 130: interrupted; -SIGINT: killed by it
        # after main() returned (the default action, restored for the shutdown).
        assert proc.returncode in (0, 1, 2, 130, -signal.SIGINT), (argv, proc.returncode, text)
        if proc.returncode == 130:
            assert text.endswith("volact: error: interrupted\n"), text
        outcomes[str(proc.returncode)] += 1
    assert outcomes["130"] >= 5, outcomes  # the signal did land early, many times
    # The import machinery's millisecond before the entry point runs is hit now and
    # then by the earliest signals; everything after it never shows a traceback.
    assert outcomes["before volact's first line"] <= 10, outcomes


def test_a_background_job_that_ignores_sigint_keeps_ignoring_it() -> None:
    """Shells start background jobs with SIGINT ignored: volact must not undo that."""
    probe = (
        "import atexit, signal, sys\n"
        "import volact.__main__\n"
        "print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)\n"
        "atexit.register(lambda: print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN))\n"
        "sys.argv = ['volact', '--version']\n"
        "volact.__main__.run()\n"
    )

    def ignore() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    for preexec, expected in ((ignore, "True"), (None, "False")):
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
            check=True, preexec_fn=preexec,
        )  # fmt: skip
        first, version, last = done.stdout.split("\n")[:3]
        assert (first, version) == (expected, "volact 0.1.0")
        assert last == expected


def test_an_error_raised_while_a_ctrl_c_unwinds_counts_as_the_interruption() -> None:
    from volact.cli import _interrupted_by

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise TypeError("cleanup failed half way") from None
    except TypeError as exc:
        # ``from None`` hides the context from tracebacks but keeps it: still a Ctrl-C.
        assert _interrupted_by(exc)
    assert not _interrupted_by(TypeError("a plain bug"))
