"""Names from the network are shown escaped, never obeyed (issue 11 item 3).

Workstation names with ESC, OSC 52 (clipboard write), C1 CSI, a newline and a bidi
override are sent to a real host over TCP; every text output of `volact host`
(events, both reports, status, alerts) and `volact client` (status, events) is then
read back and must hold none of those characters raw, but their escaped form.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from volact import wire
from volact.cli import main
from volact.host.store import HostStore
from volact.testing.hosts import make_host_home
from volact.testing.processes import free_port
from volact.text import printable
from volact.wire import ActivateRequest, LicenseState

ESC_TITLE = "\x1b]0;pwned\x07"  # sets the terminal's title
OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"  # writes to the clipboard
C1_CSI = "\x9b2J"  # clears the screen on terminals that honour 8-bit controls
BIDI = "pc\u202egpj.exe"  # shows as pc-exe.jpg
HOSTILE = [f"a{ESC_TITLE}", f"b{OSC52}"[:60], f"c{C1_CSI}", BIDI, "d\nFORGED LINE"]
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def test_printable_escapes_controls_and_bidi_and_keeps_the_rest() -> None:
    assert printable("desk-01") == "desk-01"
    assert printable("Müller-PC ☃") == "Müller-PC ☃"
    assert printable(ESC_TITLE) == "\\x1b]0;pwned\\x07"
    assert printable(BIDI) == "pc\\u202egpj.exe"
    assert printable("a\nb") == "a\\x0ab"
    assert printable("a\nb", keep_newlines=True) == "a\nb"
    assert printable("\u2028\u2066x\x7f\udcff") == "\\u2028\\u2066x\\x7f\\udcff"


def _clean(text: str) -> None:
    for ch in RAW:
        assert ch not in text, (ch, text)
    assert "\nFORGED LINE" not in text


def test_every_host_text_output_escapes_names_from_the_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "host"
    profile, _, _ = make_host_home(home, port=free_port())
    from test_host_server import Host, exchange  # the real-socket helpers

    host = Host(home, ["127.0.0.1:0"])
    try:
        sku = next(s for s in profile.catalog.skus if s.group == "desktop")
        for i, name in enumerate(HOSTILE):
            req = ActivateRequest(sku.id, uuid.UUID(int=i + 1), os.urandom(16), int(time.time()),
                                  LicenseState.GRACE, 1000, False, name)  # fmt: skip
            reply = wire.decode(exchange(host.addr("4"), wire.encode(req)))
            assert isinstance(reply, wire.ActivateReply)
    finally:
        assert host.stop() == 0
    with HostStore.open(home) as store:  # DNS data in an event (a failed publish's reason)
        store.add_event(int(time.time()), "dns_publish_failed", f"SERVFAIL from {OSC52}")
    outputs = []
    for argv in (["events", "--limit", "20"], ["report", "licensing"], ["report", "activity"],
                 ["status"], ["alerts"]):  # fmt: skip
        cmd = argv[:2] if argv[0] == "report" else argv[:1]
        code = main(["host", *cmd, "--home", str(home), *argv[len(cmd):]])
        out, err = capsys.readouterr()
        assert code == 0, err
        _clean(out + err)
        outputs.append(out)
        code = main(["host", *cmd, "--home", str(home), *argv[len(cmd):], "--json"])
        raw_json, _ = capsys.readouterr()
        _clean(raw_json)  # JSON escapes them itself
        json.loads(raw_json)
    events, licensing = outputs[0], outputs[1]
    assert "\\x1b]0;pwned\\x07" in events and "\\x1b]52;c;" in events
    assert "pc\\u202egpj.exe" in licensing and "c\\x9b2J" in licensing
    assert "d\\x0aFORGED LINE" in licensing


def test_client_text_outputs_escape_dns_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from client_support import PROFILE

    profile = tmp_path / "profile.json"
    profile.write_text(PROFILE.dumps())
    home = tmp_path / "c"
    assert main(["client", "init", "--home", str(home), "--profile", str(profile)]) == 0
    capsys.readouterr()
    # What a hostile DNS server could put in the client's event log: an SRV target.
    with (home / "events.jsonl").open("a") as f:
        event = {"t": 1, "time": "1970-01-01T00:00:01Z", "event": "srv_lookup",
                 "name": f"_volact._tcp.{OSC52}", "records": [BIDI]}  # fmt: skip
        f.write(json.dumps(event) + "\n")
    assert main(["client", "events", "--home", str(home)]) == 0
    out, err = capsys.readouterr()
    _clean(out + err)
    assert "\\x1b]52;c;" in out and "\\u202e" in out
    assert main(["client", "status", "--home", str(home)]) == 0
    _clean("".join(capsys.readouterr()))
