"""The monitoring stack shipped in deploy/: Prometheus rules and the Grafana dashboard.

``promtool check rules`` (Debian package ``prometheus``) must accept the rules, and
``promtool test rules`` must see them fire on the series a host exports. Every
metric the rules and the dashboard name must be one a live host really exports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from test_host_server import Host, activate, request
from volact.host.config import SERVE_FILE
from volact.testing.hosts import make_host_home

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "volact-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "volact-host.json"
METRIC = re.compile(r"\bvolact_host_[a-z_]+\b")


def _promtool() -> str:
    path = shutil.which("promtool") or ("/usr/bin/promtool" if os.path.exists("/usr/bin/promtool")
                                        else None)  # fmt: skip
    if path is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("promtool is missing (CI=true): `make deps` (Debian package prometheus)")
        pytest.skip("promtool is missing: apt-get install prometheus (or `make deps` as root)")
    return path


def _exported(tmp_path: Path) -> set[str]:
    """Metric names a live host exports (samples, so counters carry ``_total``)."""
    home = tmp_path / "host"
    profile, _, _ = make_host_home(home)
    host = Host(home, ["127.0.0.1:0"], "--metrics", "127.0.0.1:0")
    try:
        activate(host.addr(), request(profile, 1))
        url = f"http://{json.loads((home / SERVE_FILE).read_text())['metrics']}/metrics"
        text = httpx.get(url, timeout=10).text
    finally:
        assert host.stop() == 0
    # A family with no samples (DNS publishing off here) is exported all the same.
    families = list(text_string_to_metric_families(text))
    return {f.name for f in families} | {s.name for f in families for s in f.samples}


def test_promtool_accepts_the_rules_and_they_fire(tmp_path: Path) -> None:
    promtool = _promtool()
    r = subprocess.run([promtool, "check", "rules", str(RULES)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    # One host not activated, licensed for server (threshold 5) with count 3, idle.
    series = {
        'volact_host_activated{job="volact-host",instance="h1"}': "0x1600",
        'volact_host_count{job="volact-host",instance="h1"}': "3x1600",
        'volact_host_threshold{job="volact-host",instance="h1",group="server"}': "5x1600",
        'volact_host_threshold{job="volact-host",instance="h1",group="desktop"}': "25x1600",
        'volact_host_group_licensed{job="volact-host",instance="h1",group="server"}': "1x1600",
        'volact_host_group_licensed{job="volact-host",instance="h1",group="desktop"}': "0x1600",
        'volact_host_last_request_timestamp_seconds{job="volact-host",instance="h1"}': "0x1600",
        'volact_host_clients_expiring{job="volact-host",instance="h1"}': "3x1600",
        'volact_host_clients_expired{job="volact-host",instance="h1"}': "2x1600",
        'volact_host_dns_publish_failures{job="volact-host",instance="h1",domain="corp.example"}':
            "0x60 1x1540",
        'volact_host_new_machines_refused_total{job="volact-host",instance="h1",reason="full"}':
            "0x1500 0+1x100",
        'up{job="volact-host",instance="h1"}': "1x1600",
        'up{job="volact-host",instance="h2"}': "0x1600",
    }
    rules = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"]
             for r in g["rules"]}  # fmt: skip

    def expect(name: str, value: str = "", **labels: str) -> dict[str, object]:
        notes = {
            k: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], v)
            .replace("{{ $value }}", value)
            for k, v in rules[name]["annotations"].items()
        }
        return {"eval_time": "26h", "alertname": name,
                "exp_alerts": [{"exp_labels": {"job": "volact-host", **labels},
                                "exp_annotations": notes}]}  # fmt: skip

    # YAML is a superset of JSON: the unit test file is written as JSON.
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": k, "values": v} for k, v in series.items()],
            "alert_rule_test": [
                expect("VolactHostNotActivated", severity="critical",
                       code="host_not_activated", instance="h1"),
                expect("VolactHostNotServing", severity="critical", code="not_serving",
                       instance="h2"),
                expect("VolactHostCountBelowThreshold", severity="warning",
                       code="count_below_threshold", instance="h1", group="server"),
                expect("VolactHostIdle", severity="warning", code="idle", instance="h1"),
                expect("VolactHostClientsExpiring", "3", severity="warning",
                       code="clients_expiring", instance="h1"),
                expect("VolactHostClientsExpired", "2", severity="warning",
                       code="clients_expired", instance="h1"),
                expect("VolactHostDnsPublishFailing", severity="warning",
                       code="dns_publish_failing", instance="h1", domain="corp.example"),
                expect("VolactHostCountFlood", severity="warning", code="count_flood",
                       instance="h1"),
            ],
        }],
    }  # fmt: skip
    path = tmp_path / "rules_test.yml"
    path.write_text(json.dumps(test))
    r = subprocess.run([promtool, "test", "rules", str(path)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboard_and_rules_name_only_exported_metrics(tmp_path: Path) -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["uid"] and dash["panels"]
    exported = _exported(tmp_path)
    used: set[str] = set()
    for panel in dash["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(METRIC.findall(target["expr"]))
            assert names, (panel["title"], target["expr"])
            used |= names
    used |= set(METRIC.findall(RULES.read_text()))
    assert used <= exported, sorted(used - exported)
    assert {"volact_host_count", "volact_host_activated", "volact_host_requests_total"} <= used
