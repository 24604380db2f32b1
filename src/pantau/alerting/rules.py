"""Rule files: Prometheus's format (`groups:` of recording and alerting rules) read and
checked as `promtool check rules` does, with pantau's extra rule kinds.

Each rule has exactly one query:

* `expr:` PromQL (as in Prometheus);
* `logql:` a LogQL metric query, e.g. `sum by (service) (count_over_time({level="error"}[5m])) > 10`;
* `anomaly:` `{selector: '{job="api"}', threshold: 0.9}`: the anomaly engine's
  `pantau_anomaly_score` above a threshold, or an `anomaly` event on the bus for matching labels;
* `composite:` `{all: [A, B], within: 5m, by: [service]}` (or `any:`): alerts named A and B
  both firing (for the same `by` labels) within the window.

Problems are reported as `file:line: group "g", rule 3 ("HighLatency"): reason`, and a file
with any problem is rejected whole, so the rules already running keep running.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pantau.alerting import templates
from pantau.config import parse_duration

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class RuleFileError(ValueError):
    """Every problem of one file, each with its file:line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _LineDict(dict):
    line: int = 0


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    out = _LineDict()
    for k_node, v_node in node.value:
        key = loader.construct_object(k_node, deep=True)
        if key in out:
            raise yaml.MarkedYAMLError(problem=f"duplicate key {key!r}", problem_mark=k_node.start_mark)
        out[key] = loader.construct_object(v_node, deep=True)
    out.line = node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass
class Rule:
    kind: str  # "alert" | "record"
    name: str
    query_kind: str  # "promql" | "logql" | "anomaly" | "composite"
    query: str  # PromQL / LogQL text, or the PromQL an anomaly rule runs
    for_: float = 0.0
    keep_firing_for: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    line: int = 0
    # anomaly rules
    anomaly_matchers: str = ""
    anomaly_threshold: float = 0.0
    # composite rules
    composite_mode: str = ""  # "all" | "any"
    composite_alerts: list[str] = field(default_factory=list)
    composite_within: float = 300.0
    composite_by: list[str] = field(default_factory=list)

    def signature(self) -> tuple:
        """Equal signatures across a reload keep the rule's alert state (as Prometheus does)."""
        return (self.kind, self.name, self.query_kind, self.query, tuple(sorted(self.labels.items())))


@dataclass
class RuleGroup:
    file: str
    name: str
    interval: float
    rules: list[Rule]
    limit: int = 0
    line: int = 0

    @property
    def key(self) -> str:
        return f"{self.file};{self.name}"


def _check_promql(text: str) -> str | None:
    import promql_parser

    try:
        promql_parser.parse(text)
    except Exception as exc:  # the parser raises ValueError with Prometheus's message
        return f"could not parse expression: {exc}"
    return None


def _check_logql(text: str) -> str | None:
    from pantau.query.logql import parse

    try:
        parse(text)
    except Exception as exc:
        return f"could not parse LogQL: {exc}"
    return None


def _rule(raw: Any, file: str, group: str, index: int, problems: list[str]) -> Rule | None:
    line = getattr(raw, "line", 0)

    def bad(msg: str) -> None:
        problems.append(f"{file}:{line}: group {group!r}, rule {index}: {msg}")

    if not isinstance(raw, dict):
        bad("a rule must be a mapping")
        return None
    known = {"record", "alert", "expr", "logql", "anomaly", "composite", "for", "keep_firing_for",
             "labels", "annotations"}
    for k in raw:
        if k not in known:
            bad(f"field {k} not found in type rulefmt.Rule")
    name = raw.get("alert") if "alert" in raw else raw.get("record")
    where = f"({name!r})" if name else ""
    if "alert" in raw and "record" in raw:
        bad(f"{where} only one of 'record' and 'alert' must be set")
        return None
    if not name:
        bad("one of 'record' or 'alert' must be set")
        return None
    name = str(name)
    kind = "alert" if "alert" in raw else "record"
    queries = [k for k in ("expr", "logql", "anomaly", "composite") if k in raw]
    if len(queries) != 1:
        bad(f"{where} exactly one of 'expr', 'logql', 'anomaly' or 'composite' must be set")
        return None
    qk = queries[0]
    rule = Rule(kind, name, {"expr": "promql"}.get(qk, qk), "", line=line)
    if kind == "record":
        if not _METRIC_NAME.match(name):
            bad(f"{where} invalid recording rule name: {name}")
        for k in ("for", "keep_firing_for", "annotations"):
            if k in raw:
                bad(f"{where} invalid field '{k}' in recording rule")
        if qk in ("anomaly", "composite"):
            bad(f"{where} {qk} rules can only be alerting rules")
    else:
        if not name or "\x00" in name:
            bad(f"{where} invalid alert name")
    for k in ("for", "keep_firing_for"):
        if k in raw:
            try:
                setattr(rule, "for_" if k == "for" else k, parse_duration(raw[k]))
            except ValueError as exc:
                bad(f"{where} {k}: {exc}")
    for k in ("labels", "annotations"):
        value = raw.get(k) or {}
        if not isinstance(value, dict):
            bad(f"{where} {k} must be a mapping")
            continue
        for lk, lv in value.items():
            if k == "labels" and (not isinstance(lk, str) or not _LABEL_NAME.match(lk) or lk == "__name__"):
                bad(f"{where} invalid label name: {lk}")
            try:
                templates.check(str(lv))
            except templates.TemplateError as exc:
                bad(f"{where} {k[:-1]} {lk!r}: template: {exc}")
        setattr(rule, k, {str(a): str(b) for a, b in value.items()})
    q = raw[qk]
    if qk == "expr":
        rule.query = str(q).strip()
        err = _check_promql(rule.query) if rule.query else "field 'expr' must be set in rule"
        if err:
            bad(f"{where} {err}")
    elif qk == "logql":
        rule.query = str(q).strip()
        err = _check_logql(rule.query) if rule.query else "field 'logql' must be set in rule"
        if err:
            bad(f"{where} {err}")
    elif qk == "anomaly":
        if not isinstance(q, dict):
            q = {"threshold": q}
        selector = str(q.get("selector", "{}")).strip()
        if not selector.startswith("{"):
            selector = "{" + selector + "}"
        try:
            rule.anomaly_threshold = float(q.get("threshold", 0.8))
        except (TypeError, ValueError):
            bad(f"{where} anomaly threshold must be a number")
        rule.anomaly_matchers = selector
        inner = selector[1:-1].strip()
        rule.query = f"pantau_anomaly_score{{{inner}}} > {rule.anomaly_threshold!r}"
        err = _check_promql(rule.query)
        if err:
            bad(f"{where} anomaly selector: {err}")
    else:
        if not isinstance(q, dict) or (("all" in q) == ("any" in q)):
            bad(f"{where} composite needs exactly one of 'all' or 'any' (a list of alert names)")
            return rule
        rule.composite_mode = "all" if "all" in q else "any"
        names = q[rule.composite_mode]
        if not isinstance(names, list) or not names:
            bad(f"{where} composite {rule.composite_mode} must be a non-empty list of alert names")
            return rule
        rule.composite_alerts = [str(n) for n in names]
        try:
            rule.composite_within = parse_duration(q.get("within", "5m"))
        except ValueError as exc:
            bad(f"{where} composite within: {exc}")
        rule.composite_by = [str(b) for b in q.get("by", [])]
        rule.query = f"{rule.composite_mode}({', '.join(rule.composite_alerts)}) within {q.get('within', '5m')}"
    return rule


def parse_text(text: str, file: str, default_interval: float) -> list[RuleGroup]:
    """Parse one rule file; raise RuleFileError listing every problem with its line."""
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RuleFileError([f"{file}{line}: {getattr(exc, 'problem', None) or exc}"]) from None
    if doc is None:
        return []
    problems: list[str] = []
    if not isinstance(doc, dict) or set(doc) - {"groups"}:
        extra = sorted(set(doc) - {"groups"}) if isinstance(doc, dict) else []
        raise RuleFileError([f"{file}:{getattr(doc, 'line', 1)}: "
                             + (f"field {extra[0]} not found in type rulefmt.RuleGroups" if extra
                                else "a rule file is a mapping with 'groups'")])
    groups: list[RuleGroup] = []
    seen: set[str] = set()
    for g in doc.get("groups") or []:
        gline = getattr(g, "line", 0)
        if not isinstance(g, dict):
            problems.append(f"{file}:{gline}: a group must be a mapping")
            continue
        name = str(g.get("name") or "")
        if not name:
            problems.append(f"{file}:{gline}: Groupname must not be empty")
        elif name in seen:
            problems.append(f"{file}:{gline}: {name!r}: repeated in the same file")
        seen.add(name)
        for k in g:
            if k not in ("name", "interval", "rules", "limit", "query_offset"):
                problems.append(f"{file}:{gline}: field {k} not found in type rulefmt.RuleGroup")
        interval = default_interval
        if "interval" in g:
            try:
                interval = parse_duration(g["interval"])
                if interval <= 0:
                    raise ValueError("interval must be positive")
            except ValueError as exc:
                problems.append(f"{file}:{gline}: group {name!r}: interval: {exc}")
        rules = []
        for i, raw in enumerate(g.get("rules") or [], start=1):
            r = _rule(raw, file, name, i, problems)
            if r is not None:
                rules.append(r)
        groups.append(RuleGroup(file, name, interval, rules, int(g.get("limit") or 0), gline))
    if problems:
        raise RuleFileError(problems)
    return groups


def parse_file(path: str | Path, default_interval: float) -> list[RuleGroup]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise RuleFileError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_text(text, str(path), default_interval)
