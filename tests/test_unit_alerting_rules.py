"""Rule files, templates and the alert state machine (Prometheus semantics), over a real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from pantau.alerting.alert import Alert, fingerprint
from pantau.alerting.clock import FakeClock
from pantau.alerting.matchers import parse_matchers
from pantau.alerting.rules import RuleFileError, parse_text
from pantau.alerting.state import RuleManager
from pantau.alerting.templates import Template, expand_rule_template
from pantau.model import SampleBatch, make_labels
from pantau.query.promql import Engine
from pantau.store.sqlite import SQLiteOptions, SQLiteStore

GOOD = """
groups:
- name: api
  interval: 10s
  rules:
  - record: job:errors:rate1m
    expr: sum by (job) (rate(errors_total[1m]))
  - alert: HighErrors
    expr: job:errors:rate1m > 1
    for: 30s
    keep_firing_for: 20s
    labels: {severity: critical, team: '{{ $labels.job }}-oncall'}
    annotations:
      summary: '{{ $labels.job }} fails {{ $value | printf "%.1f" }}/s'
"""


def test_rule_file_parses() -> None:
    [g] = parse_text(GOOD, "r.yml", 60)
    assert g.interval == 10 and [r.kind for r in g.rules] == ["record", "alert"]
    alert = g.rules[1]
    assert alert.for_ == 30 and alert.keep_firing_for == 20 and alert.line == 8


@pytest.mark.parametrize(("text", "expected"), [
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum(rate(x[5m])\n", "r.yml:4: group 'g', rule 1"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels: {'bad-name': x}\n",
     "invalid label name: bad-name"),
    ("groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    for: 1m\n", "invalid field 'for'"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations: {s: '{{ .Foo'}\n", "template"),
    ("groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n", "r.yml:4: 'g': repeated"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    exp: up\n", "field exp not found"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    logql: '{app=\"x\"'\n", "could not parse LogQL"),
    ("groups:\n  - name: g\n   rules: x\n", "r.yml:3"),
])
def test_rule_file_errors_name_file_and_line(text: str, expected: str) -> None:
    with pytest.raises(RuleFileError) as err:
        parse_text(text, "r.yml", 60)
    assert expected in str(err.value)


def test_templates() -> None:
    out = expand_rule_template('{{ $labels.instance }} at {{ $value | humanize }}, {{ humanizeDuration 3725 }}',
                               {"instance": "db:9100"}, 1234567.0)
    assert out == "db:9100 at 1.235M, 1h 2m 5s"
    t = Template('{{ define "x" }}{{ range $i, $a := .Alerts }}{{ if $i }}, {{ end }}{{ $a.name | toUpper }}'
                 '{{ end }}{{ end }}')
    assert t.render('[{{ template "x" . }}]{{ if eq .n 2 }} two{{ else if gt .n 2 }} many{{ end }}',
                    {"Alerts": [{"name": "a"}, {"name": "b"}], "n": 3}) == "[A, B] many"


def test_matchers_and_fingerprint() -> None:
    ms = parse_matchers('{severity=~"crit.*", team!="ops", env=prod}')
    assert [(m.name, m.op, m.value) for m in ms] == [("severity", "=~", "crit.*"), ("team", "!=", "ops"),
                                                     ("env", "=", "prod")]
    # Prometheus's model.LabelSet{}.Fingerprint() of the empty set is the FNV-1a offset basis
    assert fingerprint({}) == "cbf29ce484222325"
    assert Alert({"a": "1"}).fingerprint == fingerprint({"a": "1"})


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(SQLiteOptions(data_dir=tmp_path / "data"))
    s.start()
    yield s
    s.close()


def _write_errors(store, t: float, per_s: float) -> None:
    batch = SampleBatch()
    for i in range(7):
        ts = int((t - 60 + i * 10) * 1000)
        batch.append(make_labels({"__name__": "errors_total", "job": "api", "instance": "a"}), ts,
                     per_s * (ts / 1000 - (t - 60)))
    store.write(batch)


def test_alert_lifecycle_series_and_restore(store) -> None:
    clock = FakeClock(1_800_000_000.0)
    sent: list[Alert] = []
    mgr = RuleManager(store, clock, sent.extend, external_url="http://pantau")
    mgr.update(parse_text(GOOD, "r.yml", 60))
    [gs] = mgr.groups.values()
    engine = Engine(store)

    def evaluate() -> None:
        mgr.evaluate_group(gs, clock.now())

    _write_errors(store, clock.now(), 5.0)
    evaluate()
    rs = gs.rules[1]
    [a] = rs.active.values()
    assert a.state == "pending" and a.labels["team"] == "api-oncall"
    assert a.annotations["summary"] == "api fails 5.0/s"
    assert sent == []
    q = engine.instant("ALERTS", int(clock.now() * 1000)).value
    assert [dict(x)["alertstate"] for x in q.labels] == ["pending"]

    # restart: a new manager on the same store resumes the pending `for` timer
    clock.advance(30)
    mgr2 = RuleManager(store, clock, sent.extend, external_url="http://pantau")
    mgr2.update(parse_text(GOOD, "r.yml", 60))
    [gs2] = mgr2.groups.values()
    _write_errors(store, clock.now(), 5.0)
    mgr2.evaluate_group(gs2, clock.now())
    [a2] = gs2.rules[1].active.values()
    assert a2.state == "firing" and a2.active_at == a.active_at
    assert [x.labels["alertname"] for x in sent] == ["HighErrors"]
    assert sent[0].ends_at == clock.now() + 4 * 60  # valid for 4 x max(interval, resend_delay)
    for_state = engine.instant("ALERTS_FOR_STATE", int(clock.now() * 1000)).value
    assert float(for_state.values[0, 0]) == int(a.active_at)

    # no more errors: kept firing for keep_firing_for, then resolved and sent resolved
    clock.advance(120)
    mgr2.evaluate_group(gs2, clock.now())
    assert a2.state == "firing" and a2.keep_firing_since == clock.now()
    clock.advance(20)
    mgr2.evaluate_group(gs2, clock.now())
    assert a2.state == "inactive" and sent[-1].ends_at == clock.now()
    # ALERTS got a staleness marker: the series is gone from instant queries
    assert len(engine.instant("ALERTS", int(clock.now() * 1000)).value.labels) == 0


def test_composite_rule(store) -> None:
    clock = FakeClock(1_800_000_000.0)
    sent: list[Alert] = []
    mgr = RuleManager(store, clock, sent.extend)
    mgr.update(parse_text("""
groups:
- name: c
  interval: 10s
  rules:
  - alert: A
    expr: label_replace(vector(1), "service", "pay", "", "")
  - alert: B
    expr: label_replace(vector(1), "service", "pay", "", "")
  - alert: Both
    composite: {all: [A, B], within: 5m, by: [service]}
""", "c.yml", 60))
    [gs] = mgr.groups.values()
    mgr.evaluate_group(gs, clock.now())
    assert sorted(x.labels["alertname"] for x in sent) == ["A", "B", "Both"]
    assert next(x for x in sent if x.labels["alertname"] == "Both").labels["service"] == "pay"


def test_rfc3339_as_go_writes_it() -> None:
    from pantau.alerting.alert import parse_rfc3339

    assert parse_rfc3339("2026-12-01T14:22:39.471Z") == 1796134959.471
    assert parse_rfc3339("2026-12-01T15:22:39.471123456+01:00") == pytest.approx(1796134959.471123)
    assert parse_rfc3339("0001-01-01T00:00:00Z") == 0.0
    with pytest.raises(ValueError):
        parse_rfc3339("2026-12-01T14:22:39")


def test_anomaly_rule_fires_on_bus_events(store) -> None:
    from pantau.bus import Bus
    from pantau.store.base import Event

    clock = FakeClock(1_800_000_000.0)
    sent: list[Alert] = []
    mgr = RuleManager(store, clock, sent.extend)
    mgr.update(parse_text("""
groups:
- name: a
  rules:
  - alert: Anomaly
    anomaly: {selector: 'service="pay"', threshold: 0.7}
""", "a.yml", 60))
    bus = Bus()
    bus.subscribe("anomaly", lambda _t, p: mgr.note_anomaly(p))
    bus.publish("anomaly", Event("anomaly", 0, labels={"service": "pay", "metric": "latency"}, data={"score": 0.9}))
    bus.publish("anomaly", Event("anomaly", 0, labels={"service": "web"}, data={"score": 0.99}))
    bus.publish("anomaly", Event("anomaly", 0, labels={"service": "pay", "metric": "x"}, data={"score": 0.1}))
    [gs] = mgr.groups.values()
    mgr.evaluate_group(gs, clock.now())
    assert [(a.labels["service"], a.labels["metric"]) for a in sent] == [("pay", "latency")]


def test_cli_checks_rule_and_alertmanager_files(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pantau.cli import app

    (tmp_path / "good.yml").write_text(GOOD)
    (tmp_path / "bad.yml").write_text("groups:\n- name: x\n  rules:\n  - alert: A\n    expr: rate(\n")
    (tmp_path / "am.yml").write_text("route: {receiver: r}\nreceivers: [{name: r, opsgenie_configs: [{}]}]\n")
    runner = CliRunner()
    ok = runner.invoke(app, ["alerting", "check-rules", str(tmp_path / "good.yml")])
    assert ok.exit_code == 0 and "1 groups, 2 rules" in ok.output
    bad = runner.invoke(app, ["alerting", "check-rules", str(tmp_path / "bad.yml")])
    assert bad.exit_code == 1 and f"{tmp_path / 'bad.yml'}:4:" in bad.output
    am = runner.invoke(app, ["alerting", "check-config", str(tmp_path / "am.yml")])
    assert am.exit_code == 0 and "opsgenie_configs" in am.output
