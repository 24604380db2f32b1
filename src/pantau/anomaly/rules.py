"""Business rules: what the business says is wrong, whatever the statistics have learned.

Four kinds, written in pantau.yaml under `anomaly.rules`:

    - name: signing_failures          # a rate: counter increase per `per`
      kind: rate
      expr: pantau_signing_failures_total
      per: 1m
      above: 20
      severity: critical
    - name: chain_integrity_floor     # a threshold on a value
      kind: threshold
      expr: pantau_chain_integrity_percent
      below: 95
    - name: equity_shift              # a change over a window (absolute, or percent: true)
      kind: change
      expr: pantau_equity_score
      window: 1h
      above: 10                       # |change| above 10 (or below: for a minimum move)
    - name: failing_and_slow          # a composite: every (all) or one (any) condition holds
      kind: composite
      all: [signing_failures, latency_p99]   # rules, or watches with an open anomaly

In the hub each rule is a PromQL expression evaluated at every interval (`query()` says which);
`evaluate()` applies the condition to the values, so the same rules can be checked against a
plain snapshot of numbers (`check_snapshot`), as the seed's example does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pantau.anomaly.duration import Duration
from pantau.anomaly.reasons import fmt_value


def _fmt_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["threshold", "rate", "change", "composite"]
    expr: str = ""  # PromQL; for rate a counter selector, for change a gauge selector
    input: str = ""  # the key of this rule's value in a snapshot (default: name)
    above: float | None = None
    below: float | None = None
    per: Duration = 60.0  # rate: the increase per this long
    window: Duration = 3600.0  # change: over this long
    percent: bool = False  # change: relative, in percent
    all: list[str] = []  # composite
    any: list[str] = []
    severity: Literal["info", "warning", "critical"] = "warning"
    description: str = ""
    unit: str = ""
    for_: int = Field(1, alias="for", ge=1, description="evaluations the condition must hold")

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if self.kind == "composite":
            if not (self.all or self.any) or (self.all and self.any):
                raise ValueError(f"rule {self.name!r}: a composite rule needs either `all` or `any`")
            return self
        if not self.expr and not self.input:
            raise ValueError(f"rule {self.name!r}: `expr` is required")
        if self.above is None and self.below is None:
            raise ValueError(f"rule {self.name!r}: give `above` or `below`")
        if self.expr:
            from pantau.query.promql.engine import parse

            try:
                parse(self.query())
            except ValueError as exc:
                raise ValueError(f"rule {self.name!r}: invalid expr {self.expr!r}: {exc}") from None
        return self

    @property
    def key(self) -> str:
        return self.input or self.name

    @property
    def what(self) -> str:
        return self.description or self.name.replace("_", " ")

    def query(self) -> str:
        """The PromQL the hub evaluates for this rule."""
        if self.kind == "rate":
            return f"increase({self.expr}[{_fmt_duration(self.per)}])"
        if self.kind == "change":
            w = _fmt_duration(self.window)
            if self.percent:
                return f"delta({self.expr}[{w}]) / ({self.expr} offset {w}) * 100"
            return f"delta({self.expr}[{w}])"
        return self.expr

    def condition(self, value: float) -> bool:
        if not np.isfinite(value):
            return False
        v = abs(value) if self.kind == "change" else value
        if self.above is not None and v > self.above:
            return True
        return self.below is not None and v < self.below

    def reason(self, value: float) -> str:
        u = "%" if self.kind == "change" and self.percent else self.unit
        if self.kind == "rate":
            per = _fmt_duration(self.per)
            return (f"{self.what}: {fmt_value(value, u)} per {per}, above the limit of "
                    f"{fmt_value(self.above, u)} per {per}")
        if self.kind == "change":
            limit = self.above if self.above is not None else self.below
            side = "more" if self.above is not None else "less"
            return (f"{self.what} changed by {'+' if value >= 0 else ''}{fmt_value(value, u)} over the last "
                    f"{_fmt_duration(self.window)} ({side} than the limit of {fmt_value(limit, u)})")
        if self.above is not None and value > self.above:
            return f"{self.what} {fmt_value(value, u)} is above the limit of {fmt_value(self.above, u)}"
        return f"{self.what} {fmt_value(value, u)} is below the floor of {fmt_value(self.below, u)}"


def parse_rules(raw: list[dict]) -> list[Rule]:
    """Validate rules; errors name the rule and the field."""
    rules: list[Rule] = []
    for i, item in enumerate(raw):
        try:
            rules.append(Rule.model_validate(item))
        except ValidationError as exc:
            name = item.get("name", f"#{i + 1}") if isinstance(item, dict) else f"#{i + 1}"
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'rule'}: {e['msg']}"
                                 for e in exc.errors())
            raise ValueError(f"rules[{i}] ({name}): {problems}") from None
    names = [r.name for r in rules]
    for r in rules:
        if names.count(r.name) > 1:
            raise ValueError(f"rule name {r.name!r} is used twice")
    return rules


@dataclass(slots=True)
class Finding:
    """One anomaly found: statistical (by the detectors) or business (by a rule)."""

    kind: Literal["statistical", "business"]
    name: str  # the rule or the metric
    reason: str
    value: float
    severity: str = "warning"
    score: float = 1.0
    evidence: list[str] = field(default_factory=list)


def evaluate(rules: list[Rule], values: Mapping[str, float], active: Mapping[str, str] | None = None) -> list[Finding]:
    """Apply the rules to one value each (`values[rule.key]`). Composite rules refer to other
    rules by name, or to `active` (name -> reason: watches with an open statistical anomaly)."""
    active = dict(active or {})
    found: dict[str, Finding] = {}
    for rule in rules:
        if rule.kind == "composite" or rule.key not in values:
            continue
        v = float(values[rule.key])
        if rule.condition(v):
            found[rule.name] = Finding("business", rule.name, rule.reason(v), v, rule.severity)
    for rule in rules:
        if rule.kind != "composite":
            continue
        names = rule.all or rule.any
        reasons = [found[n].reason if n in found else active.get(n) for n in names]
        hits = [r for r in reasons if r]
        if (rule.all and len(hits) == len(names)) or (rule.any and hits):
            found[rule.name] = Finding("business", rule.name, f"{rule.what}: " + "; and ".join(hits),
                                       float(len(hits)), rule.severity, evidence=hits)
    return list(found.values())


def check_snapshot(values: Mapping[str, float], t_ms: int, models: Mapping, rules: list[Rule],
                   threshold: float = 0.5, describe: Mapping[str, tuple[str, str]] | None = None) -> list[Finding]:
    """One observation of several named values against learned normal (`models`: name ->
    Ensemble) and the business rules. A value a rule speaks for is reported by the rule (the
    business reason is the one people act on), the others by the detectors."""
    describe = describe or {}
    business = evaluate(rules, values)
    covered = {r.key for r in rules if any(f.name == r.name for f in business)}
    findings: list[Finding] = []
    for name, value in values.items():
        model = models.get(name)
        if model is None or name in covered:
            continue
        scored = model.score(np.asarray([t_ms]), np.asarray([float(value)]))
        score = float(scored.raw[0])
        if score >= threshold:
            what, unit = describe.get(name, (name.replace("_", " "), ""))
            findings.append(Finding("statistical", name, scored.explain(0, what, unit), float(value),
                                    "critical" if score >= 0.9 else "warning", score))
    return findings + business
