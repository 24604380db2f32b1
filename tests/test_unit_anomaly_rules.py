"""Business rules and the seed's example snapshot."""

from __future__ import annotations

import numpy as np
import pytest

from pantau.anomaly import Ensemble
from pantau.anomaly.config import AnomalyConfig
from pantau.anomaly.rules import check_snapshot, evaluate, parse_rules
from pantau.config import ConfigError, load_config

RULES = [
    {"name": "signing_failures", "kind": "rate", "expr": "pantau_signing_failures_total", "per": "1m",
     "above": 20, "severity": "critical", "description": "signing failures"},
    {"name": "chain_integrity_floor", "kind": "threshold", "input": "chain_integrity_score",
     "expr": "pantau_chain_integrity_percent", "below": 95, "unit": "%", "description": "chain integrity"},
    {"name": "equity_shift", "kind": "change", "expr": "pantau_equity_score", "window": "1h", "above": 10},
    {"name": "failing_and_broken", "kind": "composite", "all": ["signing_failures", "chain_integrity_floor"]},
]


def learned(level: float, sd: float, n: int = 2000, seed: int = 1) -> Ensemble:
    model = Ensemble()
    t = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 60_000
    model.score(t, np.random.default_rng(seed).normal(level, sd, n))
    return model


def test_seed_example_one_statistical_two_business_anomalies():
    rules = parse_rules(RULES[:2])
    models = {"avg_response_time": learned(200, 15), "signing_failures": learned(2, 1, seed=2),
              "chain_integrity_score": learned(99.5, 0.2, seed=3)}
    t = 1_700_000_000_000 + 2000 * 60_000
    snapshot = {"avg_response_time": 850, "signing_failures": 25, "chain_integrity_score": 91.2}
    findings = check_snapshot(snapshot, t, models, rules,
                              describe={"avg_response_time": ("average response time", "ms")})
    kinds = sorted((f.kind, f.name) for f in findings)
    assert kinds == [("business", "chain_integrity_floor"), ("business", "signing_failures"),
                     ("statistical", "avg_response_time")]
    by_name = {f.name: f for f in findings}
    assert by_name["avg_response_time"].reason.startswith("average response time 850 ms is ")
    assert "MADs above" in by_name["avg_response_time"].reason or "standard deviations above" in \
        by_name["avg_response_time"].reason
    assert by_name["signing_failures"].reason == "signing failures: 25 per 1m, above the limit of 20 per 1m"
    assert by_name["chain_integrity_floor"].reason == "chain integrity 91.2% is below the floor of 95%"
    assert by_name["signing_failures"].severity == "critical"


def test_normal_snapshot_finds_nothing():
    rules = parse_rules(RULES[:2])
    models = {"avg_response_time": learned(200, 15), "signing_failures": learned(2, 1, seed=2),
              "chain_integrity_score": learned(99.5, 0.2, seed=3)}
    t = 1_700_000_000_000 + 2000 * 60_000
    assert check_snapshot({"avg_response_time": 205, "signing_failures": 3, "chain_integrity_score": 99.4},
                          t, models, rules) == []


def test_change_and_composite_rules():
    rules = parse_rules(RULES)
    found = {f.name: f for f in evaluate(rules, {"signing_failures": 30, "chain_integrity_score": 90,
                                                  "equity_shift": -12.5})}
    assert set(found) == {"signing_failures", "chain_integrity_floor", "equity_shift", "failing_and_broken"}
    assert found["equity_shift"].reason == "equity shift changed by -12.5 over the last 1h (more than the limit of 10)"
    assert "signing failures: 30 per 1m" in found["failing_and_broken"].reason
    only_one = {f.name for f in evaluate(rules, {"signing_failures": 30, "chain_integrity_score": 99})}
    assert only_one == {"signing_failures"}


def test_composite_can_name_a_watch_with_an_open_anomaly():
    rules = parse_rules([RULES[0], {"name": "both", "kind": "composite",
                                    "all": ["signing_failures", "latency_p99"]}])
    assert {f.name for f in evaluate(rules, {"signing_failures": 30})} == {"signing_failures"}
    found = {f.name for f in evaluate(rules, {"signing_failures": 30},
                                      active={"latency_p99": "p99 latency 850 ms is ..."})}
    assert found == {"signing_failures", "both"}


def test_rules_compile_to_promql():
    rules = {r.name: r for r in parse_rules(RULES)}
    assert rules["signing_failures"].query() == "increase(pantau_signing_failures_total[1m])"
    assert rules["equity_shift"].query() == "delta(pantau_equity_score[1h])"
    assert rules["chain_integrity_floor"].query() == "pantau_chain_integrity_percent"


@pytest.mark.parametrize(("rules", "message"), [
    ([{"name": "x", "kind": "rate", "expr": "foo_total"}], "rules[0] (x)"),
    ([{"name": "x", "kind": "threshold", "expr": "foo", "above": 1, "bogus": 2}], "bogus"),
    ([{"name": "x", "kind": "threshold", "expr": "foo{", "above": 1}], "invalid expr"),
    ([{"name": "c", "kind": "composite"}], "needs either `all` or `any`"),
])
def test_bad_rules_are_refused_naming_the_field(rules, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        AnomalyConfig.model_validate({"rules": rules})


def test_bad_anomaly_config_names_the_field(tmp_path):
    path = tmp_path / "pantau.yaml"
    path.write_text("anomaly:\n  detectors:\n    robust_z: {z_min: 5, z_half: 2}\n")
    with pytest.raises(ConfigError, match=r"anomaly\.detectors\.robust_z.*z_half"):
        load_config(path)
    path.write_text("anomaly:\n  watches:\n    - {name: lat, expr: 'rate(x[5m]'}\n")
    with pytest.raises(ConfigError, match=r"anomaly\.watches\.0\.expr.*invalid PromQL"):
        load_config(path)
