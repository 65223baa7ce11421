"""The console's fleet view reads the SRV records of the domains its host publishes in.

With a real BIND 9: two hosts publish themselves in ``lab.example``; the fleet view of
the first says it is published there and lists the second (not in its
``console-fleet.json``) as found in DNS, with the host id of its ownership marker.
With BIND stopped, the view says why it could not read the records and shows no
made-up row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services import Bind9
from test_dns_e2e import World, make_host
from test_dns_e2e import lab as lab  # the module's own BIND (module scope)
from test_dns_e2e import world as world
from volact.cli import main
from volact.host import console
from volact.host.config import CONFIG_FILE

pytestmark = pytest.mark.slow

ZONE = "lab.example"


@pytest.fixture
def hosts(world: World, lab: Bind9) -> Iterator[tuple[Path, Path]]:
    lab.start()
    a, rogue = make_host(world, "fa", lab), make_host(world, "rogue", lab)
    for home in (a, rogue):
        assert main(["host", "dns", "publish", "--home", str(home)]) == 0
    yield a, rogue
    lab.start()
    for home in (a, rogue):
        main(["host", "dns", "unpublish", "--home", str(home)])


def _host_id(home: Path) -> str:
    return str(json.loads((home / CONFIG_FILE).read_text())["host_id"])


def test_fleet_lists_hosts_published_in_its_domains(
    hosts: tuple[Path, Path], lab: Bind9
) -> None:
    a, rogue = hosts
    view = console.fleet(a, int(time.time()))
    assert view["dns"] is not None
    [entry] = view["dns"]
    assert entry["domain"] == ZONE and "error" not in entry
    assert {t["target"] for t in entry["targets"]} == {f"fa.{ZONE}", f"rogue.{ZONE}"}
    own, *others = view["hosts"]
    assert own["name"] == "this host" and own["in_dns"] == [ZONE]
    [found] = others
    assert found["discovered"] is True and found["answered"] is False
    assert found["name"] == f"rogue.{ZONE}" and found["host_id"] == _host_id(rogue)
    assert found["in_dns"] == [ZONE]
    page = console._fleet_html(view)
    assert f"rogue.{ZONE}" in page and "not in console-fleet.json" in page

    lab.stop()  # no answer: the reason is shown, nobody is invented or dropped
    view = console.fleet(a, int(time.time()))
    [entry] = view["dns"]
    assert "error" in entry and "targets" not in entry
    assert [h["name"] for h in view["hosts"]] == ["this host"]
    assert view["hosts"][0]["in_dns"] == []
    assert "cannot read" in console._fleet_html(view)


def test_fleet_without_dns_settings_reads_no_dns(tmp_path: Path) -> None:
    from volact.testing.hosts import make_host_home

    home = tmp_path / "host"
    make_host_home(home)
    view = console.fleet(home, int(time.time()))
    assert view["dns"] is None and "in_dns" not in view["hosts"][0]
    assert "<td>—</tr>" in console._fleet_html(view)
