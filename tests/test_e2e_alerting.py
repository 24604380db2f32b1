"""Alerting end to end: a real `pantau serve` evaluates rule files, routes the alerts, and a
real local webhook receiver checks each payload (schema and HMAC signature)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.alerting_receivers import Receiver
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e

RULES = """
groups:
- name: always
  interval: 500ms
  rules:
  - alert: AlwaysOn
    expr: vector(7)
    for: 1s
    labels: {severity: warning}
    annotations: {summary: 'value {{ $value }}'}
"""

AM = """
route:
  receiver: hook
  group_by: [alertname]
  group_wait: {group_wait}
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: {url}
    hmac_secret_file: {secret}
"""


def _setup(tmp_path: Path, receiver: Receiver, group_wait: str = "200ms", rules: str = RULES) -> str:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "main.yml").write_text(rules)
    (tmp_path / "secret").write_text("s3cret\n")
    (tmp_path / "am.yml").write_text(AM.format(url=receiver.url, secret=tmp_path / "secret", group_wait=group_wait))
    return (f"rule_files: ['{tmp_path}/rules/*.yml']\nalertmanager_config: {tmp_path}/am.yml\n"
            "alerting: {retry_initial: 50ms, retry_max: 200ms, reload_interval: 200ms}\n")


@pytest.fixture
def receiver():
    r = Receiver(hmac_secret="s3cret")
    yield r
    r.close()


def test_rule_fires_webhook_and_bad_rule_file_keeps_previous_rules(hub_factory, tmp_path: Path, receiver) -> None:
    hub = hub_factory(_setup(tmp_path, receiver)).start()
    assert wait_until(lambda: receiver.alerts(), timeout=20), hub.log()
    assert receiver.problems == []
    body = receiver.received[0]
    assert body["groupKey"] == '{}:{alertname="AlwaysOn"}' and body["receiver"] == "hook"
    assert body["alerts"][0]["annotations"] == {"summary": "value 7"}
    assert body["alerts"][0]["generatorURL"].startswith(hub.api + "/graph?g0.expr=vector%287%29")
    # Prometheus-compatible views
    rules = hub.get("/api/v1/rules").json()["data"]["groups"]
    assert rules[0]["rules"][0]["state"] == "firing"
    assert hub.get("/api/v1/alerts").json()["data"]["alerts"][0]["labels"]["alertname"] == "AlwaysOn"
    series = hub.get("/api/v1/query", query="ALERTS").json()["data"]["result"]
    assert series[0]["metric"] == {"__name__": "ALERTS", "alertname": "AlwaysOn", "alertstate": "firing",
                                   "severity": "warning"}

    # a broken file is rejected with file:line; the previous rules keep running
    bad = RULES + "  - alert: Broken\n    expr: sum(rate(x[5m])\n"
    (tmp_path / "rules" / "main.yml").write_text(bad)
    status = wait_until(lambda: hub.get("/api/pantau/alerting/status").json()["rule_errors"], timeout=10)
    [(path, problems)] = status.items()
    assert path.endswith("main.yml") and f"{path}:11:" in problems[0], problems
    before = hub.get("/api/v1/rules").json()["data"]["groups"][0]["lastEvaluation"]
    assert wait_until(lambda: hub.get("/api/v1/rules").json()["data"]["groups"][0]["lastEvaluation"] != before)
    assert [r["name"] for r in hub.get("/api/v1/rules").json()["data"]["groups"][0]["rules"]] == ["AlwaysOn"]

    # fixed: the new rule is picked up without a restart
    (tmp_path / "rules" / "main.yml").write_text(RULES + "  - record: seven\n    expr: vector(7)\n")
    assert wait_until(lambda: len(hub.get("/api/v1/rules").json()["data"]["groups"][0]["rules"]) == 2, timeout=10)
    assert hub.get("/api/pantau/alerting/status").json()["rule_errors"] == {}
    assert hub.stop() == 0


def _post(hub, path: str, body) -> httpx.Response:
    return httpx.post(f"{hub.api}{path}", json=body, timeout=10)


def test_alertmanager_api_v2_silences_ack_and_history(hub_factory, tmp_path: Path, receiver) -> None:
    hub = hub_factory(_setup(tmp_path, receiver, rules="groups: []\n")).start()
    # malformed input: 400 with the reason
    r = httpx.post(f"{hub.api}/api/v2/alerts", content=b"{not json", timeout=10)
    assert r.status_code == 400 and "parsing alerts body" in r.json()
    assert "labels in body is required" in _post(hub, "/api/v2/alerts", [{"annotations": {}}]).json()
    r = _post(hub, "/api/v2/alerts", [{"labels": {"a": "b"}, "startsAt": "2030-01-01T00:00:00Z",
                                       "endsAt": "2029-01-01T00:00:00Z"}])
    assert r.status_code == 400 and "start time must be before end time" in r.json()
    assert "invalid label name" in _post(hub, "/api/v2/alerts", [{"labels": {"a-b": "c"}}]).json()
    r = _post(hub, "/api/v2/silences", {"matchers": [], "startsAt": "2030-01-01T00:00:00Z"})
    assert r.status_code == 400 and "required" in r.json()

    assert _post(hub, "/api/v2/alerts", [{"labels": {"alertname": "DiskFull", "instance": "db1"},
                                          "annotations": {"summary": "disk"}}]).status_code == 200
    [alert] = hub.get("/api/v2/alerts").json()
    fp = alert["fingerprint"]
    assert alert["status"]["state"] == "active" and alert["receivers"] == [{"name": "hook"}]
    assert wait_until(lambda: receiver.alerts() == [("firing", "DiskFull")], timeout=10)
    groups = hub.get("/api/v2/alerts/groups").json()
    assert groups[0]["labels"] == {"alertname": "DiskFull"} and groups[0]["receiver"] == {"name": "hook"}

    now = time.time()
    sil = _post(hub, "/api/v2/silences", {
        "matchers": [{"name": "instance", "value": "db1", "isRegex": False, "isEqual": True}],
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
        "createdBy": "ayu", "comment": "maintenance"})
    sid = sil.json()["silenceID"]
    [got] = hub.get("/api/v2/alerts").json()
    assert got["status"] == {"state": "suppressed", "silencedBy": [sid], "inhibitedBy": []}
    assert hub.get("/api/v2/alerts", silenced="false").json() == []
    assert hub.get(f"/api/v2/silence/{sid}").json()["status"]["state"] == "active"
    assert httpx.delete(f"{hub.api}/api/v2/silence/{sid}").status_code == 200
    assert hub.get(f"/api/v2/silence/{sid}").json()["status"]["state"] == "expired"
    assert hub.get("/api/v2/status").json()["config"]["original"].startswith("\nroute:")
    assert hub.get("/-/healthy").status_code == 200 and hub.get("/-/ready").status_code == 200

    # acknowledge, resolve and the history of both
    r = _post(hub, f"/api/pantau/alerts/{fp}/ack", {"by": "ayu", "comment": "on it"})
    assert r.json()["acknowledged"]["by"] == "ayu"
    assert hub.get("/api/v2/alerts").json()[0]["pantau"]["acknowledged"]["comment"] == "on it"
    assert _post(hub, f"/api/pantau/alerts/{fp}/resolve", {"by": "ayu"}).status_code == 200
    assert wait_until(lambda: ("resolved", "DiskFull") in receiver.alerts(), timeout=10)
    [occurrence] = hub.get("/api/pantau/alerts/history", alertname="DiskFull").json()
    assert occurrence["acknowledged"]["by"] == "ayu" and occurrence["resolved_manually"]["by"] == "ayu"
    assert occurrence["end"] is not None
    sent = hub.get("/api/pantau/notifications", receiver="hook", status="sent").json()
    assert len(sent) == 2 and {a["status"] for n in sent for a in n["alerts"]} == {"firing", "resolved"}
    assert _post(hub, "/api/pantau/alerts/0000/ack", {}).status_code == 404


def test_receiver_down_then_back_each_notification_once(hub_factory, tmp_path: Path, receiver) -> None:
    hub = hub_factory(_setup(tmp_path, receiver, rules="groups: []\n")).start()
    receiver.fail_with = 503
    names = [f"Alert{i}" for i in range(20)]
    assert _post(hub, "/api/v2/alerts", [{"labels": {"alertname": n}} for n in names]).status_code == 200
    assert wait_until(lambda: receiver.attempts >= 60, timeout=20)  # retried with backoff
    assert hub.get("/readyz").status_code == 200
    receiver.fail_with = None
    assert wait_until(lambda: len(receiver.received) >= 20, timeout=20)
    time.sleep(2.5)  # two more group intervals: nothing repeats
    assert sorted(n for _, n in receiver.alerts()) == sorted(names)
    failed = hub.get("/api/pantau/notifications", status="failed", limit=1000).json()
    assert failed and all("HTTP 503" in n["result"] for n in failed), {n["result"] for n in failed}
    metrics = hub.get("/metrics").text
    assert 'pantau_alerting_notification_attempts_total{integration="webhook",outcome="sent"} 20.0' in metrics
    assert 'pantau_alerting_alerts{state="active"} 20.0' in metrics


def test_kill_9_before_and_after_sending(hub_factory, tmp_path: Path, receiver) -> None:
    config = _setup(tmp_path, receiver, group_wait="3s", rules="groups: []\n")
    hub = hub_factory(config).start()
    assert _post(hub, "/api/v2/alerts", [{"labels": {"alertname": "Crash"}}]).status_code == 200
    hub.stop(signal.SIGKILL, timeout=10)  # killed before group_wait ran out: nothing sent yet
    assert receiver.received == []
    again = hub_factory(config, data_dir=hub.data_dir).start()
    assert wait_until(lambda: receiver.alerts(), timeout=20), again.log()
    assert receiver.alerts() == [("firing", "Crash")]
    again.stop(signal.SIGKILL, timeout=10)  # killed after sending: not sent again
    third = hub_factory(config, data_dir=hub.data_dir).start()
    time.sleep(4.5)  # past group_wait and more than one group_interval
    assert receiver.alerts() == [("firing", "Crash")], third.log()


def test_logql_and_anomaly_rules(hub_factory, tmp_path: Path, receiver) -> None:
    from tests.otlp_factory import gauge_request, log_request

    rules = """
groups:
- name: pantau-kinds
  interval: 500ms
  rules:
  - alert: PaymentErrors
    logql: 'sum by (service_name) (count_over_time({service_name="pay"} |= "failed" [1m])) > 3'
    annotations: {summary: '{{ $value }} failures in a minute'}
  - alert: Anomalous
    anomaly: {selector: 'detector="zscore"', threshold: 0.8}
"""
    hub = hub_factory(_setup(tmp_path, receiver, rules=rules)).start()
    headers = {"Content-Type": "application/x-protobuf"}
    body = log_request(5, service="pay", body="payment {i} failed").SerializeToString()
    assert httpx.post(f"{hub.otlp_http}/v1/logs", content=body, headers=headers).status_code == 200
    now = time.time_ns()
    metrics = gauge_request("pantau_anomaly_score", [(now, 0.93)], {"detector": "zscore"}, service="pay")
    assert httpx.post(f"{hub.otlp_http}/v1/metrics", content=metrics.SerializeToString(),
                      headers=headers).status_code == 200

    def names() -> set[str]:
        return {a["labels"]["alertname"] for a in hub.get("/api/v2/alerts").json()}

    assert wait_until(lambda: names() == {"PaymentErrors", "Anomalous"}, timeout=20), hub.get("/api/v1/rules").text
    alerts = {a["labels"]["alertname"]: a for a in hub.get("/api/v2/alerts").json()}
    assert alerts["PaymentErrors"]["labels"]["service_name"] == "pay"
    assert alerts["PaymentErrors"]["annotations"]["summary"] == "5 failures in a minute"
    assert alerts["Anomalous"]["labels"]["detector"] == "zscore"
    kinds = {r["name"]: r.get("pantauKind") for r in hub.get("/api/v1/rules").json()["data"]["groups"][0]["rules"]}
    assert kinds == {"PaymentErrors": "logql", "Anomalous": "anomaly"}


def test_broken_alertmanager_file_at_start_is_a_clear_error(hub_factory, tmp_path: Path) -> None:
    (tmp_path / "am.yml").write_text("route: {receiver: nobody}\nreceivers: [{name: somebody}]\n")
    hub = hub_factory(f"alertmanager_config: {tmp_path}/am.yml\n")
    with pytest.raises(RuntimeError) as err:
        hub.start()
    assert 'undefined receiver "nobody" used in route' in str(err.value)
    assert "am.yml" in str(err.value)
