"""pantau next to the real thing: a real Prometheus sends its alerts to pantau's API v2, and
a real Alertmanager given the same configuration and the same alert sequence sends the same
notifications (receiver, group key, alerts) as pantau."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.alerting_receivers import Receiver
from tests.conftest import free_port, require, wait_until
from tests.prometheus_harness import PrometheusProcess

pytestmark = pytest.mark.e2e


def test_real_prometheus_sends_alerts_to_pantau(hub_factory, tmp_path: Path) -> None:
    binary = require("prometheus", "prometheus")
    hook = Receiver()
    try:
        (tmp_path / "am.yml").write_text(f"""
route: {{receiver: hook, group_by: [alertname], group_wait: 200ms, group_interval: 1s}}
receivers: [{{name: hook, webhook_configs: [{{url: "{hook.url}"}}]}}]
""")
        hub = hub_factory(f"alertmanager_config: {tmp_path}/am.yml\n").start()
        (tmp_path / "prom").mkdir()
        (tmp_path / "prom" / "rules.yml").write_text("""
groups:
- name: prom
  interval: 1s
  rules:
  - alert: FromPrometheus
    expr: vector(42)
    labels: {severity: page}
    annotations: {summary: 'value {{ $value }}'}
""")
        prom = PrometheusProcess(tmp_path / "prom", {
            "global": {"evaluation_interval": "1s"},
            "rule_files": ["rules.yml"],
            "alerting": {"alertmanagers": [{"api_version": "v2",
                                            "static_configs": [{"targets": [f"127.0.0.1:{hub.port}"]}]}]},
        }, binary=binary, extra_args=["--rules.alert.resend-delay=1s"]).start()
        try:
            assert wait_until(lambda: hook.received, timeout=30), prom.log()[-2000:] + hub.log()
            alert = hook.received[0]["alerts"][0]
            assert alert["labels"] == {"alertname": "FromPrometheus", "severity": "page"}
            assert alert["annotations"] == {"summary": "value 42"}
            assert alert["generatorURL"].startswith("http")
            assert hook.problems == []
            # Prometheus keeps re-sending; pantau does not notify again within repeat_interval
            time.sleep(2)
            assert len(hook.received) == 1
        finally:
            prom.stop()
    finally:
        hook.close()


AM_SIDE_BY_SIDE = """
route:
  receiver: default
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
  - matchers: ['team="db"']
    receiver: db
    continue: true
  - match: {{severity: critical}}
    receiver: pager
    group_by: [alertname, cluster]
receivers:
- name: default
  webhook_configs: [{{url: "{url}/default"}}]
- name: db
  webhook_configs: [{{url: "{url}/db"}}]
- name: pager
  webhook_configs: [{{url: "{url}/pager"}}]
inhibit_rules:
- source_matchers: ['severity="critical"']
  target_matchers: ['severity="warning"']
  equal: [cluster]
"""


def _notifications(receiver: Receiver) -> set[tuple]:
    return {(b["receiver"], b["groupKey"], b["status"],
             frozenset((a["status"], a["fingerprint"]) for a in b["alerts"])) for b in receiver.received}


def test_same_notifications_as_a_real_alertmanager(hub_factory, tmp_path: Path) -> None:
    binary = require("prometheus-alertmanager", "prometheus-alertmanager")
    ours, theirs = Receiver(), Receiver()
    am_proc = None
    try:
        (tmp_path / "pantau-am.yml").write_text(AM_SIDE_BY_SIDE.format(url=ours.url))
        (tmp_path / "real-am.yml").write_text(AM_SIDE_BY_SIDE.format(url=theirs.url))
        hub = hub_factory(f"alertmanager_config: {tmp_path}/pantau-am.yml\n").start()
        am_port = free_port()
        am_log = (tmp_path / "am.log").open("wb")
        am_proc = subprocess.Popen([binary, f"--config.file={tmp_path}/real-am.yml",
                                    f"--storage.path={tmp_path}/am-data", f"--web.listen-address=127.0.0.1:{am_port}",
                                    "--cluster.listen-address="], stdout=am_log, stderr=subprocess.STDOUT)
        am_url = f"http://127.0.0.1:{am_port}"

        def am_ready() -> bool:
            try:
                return httpx.get(f"{am_url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(am_ready, timeout=30), (tmp_path / "am.log").read_text()

        def post(alerts: list[dict]) -> None:
            for base in (hub.api, am_url):
                assert httpx.post(f"{base}/api/v2/alerts", json=alerts, timeout=10).status_code == 200

        wave1 = [
            {"labels": {"alertname": "Slow", "team": "db", "cluster": "c1", "severity": "warning"}},
            {"labels": {"alertname": "Slow", "team": "web", "cluster": "c2", "severity": "warning"}},
            {"labels": {"alertname": "Down", "cluster": "c1", "severity": "critical"}},
            {"labels": {"alertname": "Down", "cluster": "c3", "severity": "critical"}},
            {"labels": {"alertname": "Disk", "team": "db", "cluster": "c9"}},
        ]
        post(wave1)
        time.sleep(4)
        # the same alerts as Alertmanager holds them (fingerprints, suppression by inhibition)
        mine = {(a["fingerprint"], a["status"]["state"], tuple(a["status"]["inhibitedBy"]))
                for a in httpx.get(f"{hub.api}/api/v2/alerts").json()}
        real = {(a["fingerprint"], a["status"]["state"], tuple(a["status"]["inhibitedBy"]))
                for a in httpx.get(f"{am_url}/api/v2/alerts").json()}
        assert mine == real
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        post([{"labels": wave1[4]["labels"], "endsAt": now},
              {"labels": {"alertname": "Down", "cluster": "c3", "severity": "critical"}, "endsAt": now}])
        time.sleep(5)
        assert ours.problems == [] and theirs.problems == []
        assert theirs.received, (tmp_path / "am.log").read_text()
        assert _notifications(ours) == _notifications(theirs)
    finally:
        if am_proc is not None:
            am_proc.terminate()
            am_proc.wait(10)
        ours.close()
        theirs.close()


def test_amtool_works_against_pantau(hub) -> None:
    amtool = require("amtool", "prometheus-alertmanager")
    url = f"--alertmanager.url={hub.api}"

    def run(*args: str) -> str:
        out = subprocess.run([amtool, url, *args], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout

    run("alert", "add", "DiskFull", "instance=db1", "--annotation=summary=disk full")
    assert "DiskFull" in run("alert", "query") and "active" in run("alert", "query")
    sid = run("silence", "add", "instance=db1", "-c", "maintenance", "-a", "ayu", "-d", "1h").strip()
    assert sid in run("silence", "query")
    assert "suppressed" in run("alert", "query", "--silenced")
    run("silence", "expire", sid)
    assert sid not in run("silence", "query") and sid in run("silence", "query", "--expired")
