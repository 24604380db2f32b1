"""Rule evaluation: alert states (inactive → pending → firing → resolved), recording-rule
series, `ALERTS`/`ALERTS_FOR_STATE`, persistence, and handing alerts to the alert store.

The state machine is Prometheus's `rules/alerting.go`: an alert is pending from the first
evaluation that returns it, firing once it has been returned for `for`, kept firing for
`keep_firing_for` after it stops being returned, then resolved (and forgotten 15 minutes
later). Firing and recently resolved alerts are sent every `resend_delay` with `endsAt` four
intervals ahead, exactly as Prometheus sends them to Alertmanager. Each group's active alerts
are saved in the store after every evaluation that changed them, so a restart resumes
pending `for` timers and firing alerts instead of starting over.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import orjson

from pantau.alerting.alert import Alert
from pantau.alerting.clock import Clock
from pantau.alerting.engine import RuleEngine, shared_metrics
from pantau.alerting.rules import Rule, RuleGroup
from pantau.alerting.templates import TemplateError, expand_rule_template
from pantau.model import METRIC_NAME, SampleBatch, make_labels, stale_marker
from pantau.query.promql import PromQLError
from pantau.store.base import Matcher, Store

log = logging.getLogger("pantau.alerting.rules")
NAMESPACE = "alerting.rules"
RESOLVED_RETENTION = 15 * 60.0


@dataclass
class ActiveAlert:
    labels: dict[str, str]
    annotations: dict[str, str]
    state: str  # pending | firing | inactive
    active_at: float
    value: float = 0.0
    fired_at: float = 0.0
    resolved_at: float = 0.0
    last_sent_at: float = 0.0
    valid_until: float = 0.0
    keep_firing_since: float = 0.0


@dataclass
class RuleState:
    rule: Rule
    active: dict[str, ActiveAlert] = field(default_factory=dict)
    health: str = "unknown"
    last_error: str = ""
    last_evaluation: float = 0.0
    evaluation_time: float = 0.0


@dataclass
class GroupState:
    group: RuleGroup
    rules: list[RuleState]
    last_evaluation: float = 0.0
    evaluation_time: float = 0.0
    next_eval: float = 0.0
    # series each rule wrote at its last evaluation (by rule position), for staleness markers
    previous_series: dict[int, set[tuple]] = field(default_factory=dict)
    saved_digest: str = ""
    shared: dict[str, list[Matcher]] = field(default_factory=dict)  # metrics its rules read together


def _fp(labels: dict[str, str]) -> str:
    return orjson.dumps(sorted(labels.items())).decode()


def _offset(key: str, interval: float) -> float:
    """Spread groups over their interval (Prometheus hashes the group too)."""
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return (h % max(1, int(interval * 1000))) / 1000.0


class RuleManager:
    """Holds the loaded groups and evaluates them; thread-safe for the API's readers."""

    def __init__(self, store: Store, clock: Clock, send: Callable[[list[Alert]], None], *,
                 external_url: str = "", external_labels: dict[str, str] | None = None,
                 resend_delay: float = 60.0, outage_tolerance: float = 3600.0,
                 logql: Callable[[str, int], list[tuple[tuple, float]]] | None = None) -> None:
        self.store = store
        self.clock = clock
        self.send = send
        self.engine = RuleEngine(store)
        self.external_url = external_url
        self.external_labels = external_labels or {}
        self.resend_delay = resend_delay
        self.outage_tolerance = outage_tolerance
        self.logql = logql
        self.groups: dict[str, GroupState] = {}
        self._lock = threading.Lock()
        # alertname -> {labels fp: (labels, last time seen firing)} for composite rules
        self.firing_seen: dict[str, dict[str, tuple[dict[str, str], float]]] = {}
        self.anomaly_events: deque[tuple[float, dict[str, str], float]] = deque(maxlen=10_000)
        self.evaluations = 0
        self.eval_seconds = 0.0

    # --- loading -----------------------------------------------------------------------------

    def update(self, groups: list[RuleGroup], files: set[str] | None = None) -> None:
        """Replace the groups of `files` (all when None) keeping the state of unchanged rules."""
        now = self.clock.now()
        with self._lock:
            old = self.groups
            new: dict[str, GroupState] = {}
            for key, gs in old.items():
                if files is not None and gs.group.file not in files:
                    new[key] = gs
            for g in groups:
                prev = old.get(g.key)
                prev_by_sig = {rs.rule.signature(): rs for rs in prev.rules} if prev else {}
                states = []
                for r in g.rules:
                    p = prev_by_sig.pop(r.signature(), None)
                    rs = RuleState(r, p.active if p else {}, p.health if p else "unknown")
                    if p:
                        rs.last_evaluation, rs.evaluation_time = p.last_evaluation, p.evaluation_time
                    states.append(rs)
                gs = GroupState(g, states, shared=shared_metrics(
                    [r.query for r in g.rules if r.query_kind in ("promql", "anomaly")]))
                if prev is not None:
                    if [r.signature() for r in prev.group.rules] == [r.signature() for r in g.rules]:
                        gs.previous_series = prev.previous_series
                    gs.next_eval = prev.next_eval if prev.group.interval == g.interval else 0.0
                    gs.last_evaluation = prev.last_evaluation
                else:
                    self._restore(gs, now)
                if not gs.next_eval:
                    base = math.floor(now / g.interval) * g.interval + _offset(g.key, g.interval)
                    gs.next_eval = base if base >= now else base + g.interval
                    if gs.next_eval - now > g.interval:
                        gs.next_eval -= g.interval
                new[g.key] = gs
            self.groups = new

    def _restore(self, gs: GroupState, now: float) -> None:
        raw = self.store.get_state(NAMESPACE, gs.group.key)
        if not raw:
            return
        saved = orjson.loads(raw)
        if now - saved.get("t", 0) > self.outage_tolerance:
            return
        by_name = {(r["name"], r["query"]): r["alerts"] for r in saved.get("rules", [])}
        for rs in gs.rules:
            for a in by_name.get((rs.rule.name, rs.rule.query), []):
                alert = ActiveAlert(**a)
                rs.active[_fp(alert.labels)] = alert
        for i, series in saved.get("series", {}).items():
            gs.previous_series[int(i)] = {tuple(map(tuple, s)) for s in series}

    def _save(self, gs: GroupState, now: float) -> None:
        rules = [{"name": rs.rule.name, "query": rs.rule.query, "alerts": [asdict(a) for a in rs.active.values()]}
                 for rs in gs.rules if rs.rule.kind == "alert" and rs.active]
        body = {"rules": rules, "series": {str(i): sorted(list(map(list, s)) for s in series)
                                           for i, series in gs.previous_series.items() if series}}
        digest = hashlib.sha1(orjson.dumps(body)).hexdigest()
        if digest != gs.saved_digest:
            body["t"] = now
            self.store.put_state(NAMESPACE, gs.group.key, orjson.dumps(body))
            gs.saved_digest = digest

    # --- evaluation ----------------------------------------------------------------------------

    def due(self, now: float) -> list[GroupState]:
        with self._lock:
            return [gs for gs in self.groups.values() if gs.next_eval <= now]

    def next_due(self) -> float:
        with self._lock:
            return min((gs.next_eval for gs in self.groups.values()), default=math.inf)

    def evaluate_due(self) -> int:
        now = self.clock.now()
        groups = self.due(now)
        for gs in groups:
            ts = gs.next_eval
            # missed iterations (a slow evaluation, a paused process) are skipped, not replayed
            while gs.next_eval <= now:
                gs.next_eval += gs.group.interval
            self.evaluate_group(gs, ts if now - ts < gs.group.interval else now)
        return len(groups)

    def evaluate_group(self, gs: GroupState, ts: float) -> None:
        started = time.perf_counter()
        t_ms = int(ts * 1000)
        batch = SampleBatch()
        to_send: list[Alert] = []
        stale = stale_marker()
        self.engine.begin_group(gs.shared)
        # composite rules read what the group's other alerts concluded in this evaluation
        order = sorted(range(len(gs.rules)), key=lambda k: gs.rules[k].rule.query_kind == "composite")
        ordered = [gs.rules[k] for k in order]
        for i, (pos, rs) in enumerate(zip(order, ordered, strict=True)):
            r_started = time.perf_counter()
            current: set[tuple] = set()
            try:
                result = self.query(rs.rule, ts, t_ms)
                if rs.rule.kind == "record":
                    self._record(rs, result, batch, current, t_ms)
                    for labels in gs.previous_series.get(pos, set()) - current:
                        batch.append(labels, t_ms, stale)
                    gs.previous_series[pos] = current
                    # a later rule of the group may read this series: commit it first
                    if any(rs.rule.name in later.rule.query for later in ordered[i + 1:]):
                        self._flush(batch)
                        batch = SampleBatch()
                        self.engine.begin_group({k: v for k, v in gs.shared.items() if k != rs.rule.name})
                else:
                    self._alert_eval(rs, result, ts, gs.group)
                    self._alert_series(rs, batch, current, t_ms)
                    for labels in gs.previous_series.get(pos, set()) - current:
                        batch.append(labels, t_ms, stale)
                    gs.previous_series[pos] = current
                    to_send += self._to_send(rs, ts, gs.group.interval)
                rs.health, rs.last_error = "ok", ""
            except (PromQLError, TemplateError, ValueError, RuntimeError) as exc:
                rs.health, rs.last_error = "err", str(exc)
                log.warning("rule %s in group %s failed: %s", rs.rule.name, gs.group.name, exc)
            except Exception as exc:  # never let one rule stop the others
                rs.health, rs.last_error = "err", repr(exc)
                log.exception("rule %s in group %s crashed", rs.rule.name, gs.group.name)
            rs.last_evaluation = ts
            rs.evaluation_time = time.perf_counter() - r_started
        self._flush(batch)
        if to_send:
            self.send(to_send)
        self._save(gs, ts)
        gs.last_evaluation = ts
        gs.evaluation_time = time.perf_counter() - started
        self.evaluations += len(gs.rules)
        self.eval_seconds += gs.evaluation_time

    def _flush(self, batch: SampleBatch) -> None:
        if len(batch):
            try:
                self.store.write(batch, timeout=60)
            except Exception as exc:
                log.warning("could not write rule results: %s", exc)

    def query(self, rule: Rule, ts: float, t_ms: int) -> list[tuple[dict[str, str], float]]:
        if rule.query_kind in ("promql", "anomaly"):
            res = self.engine.instant(rule.query, t_ms)
            out: list[tuple[dict[str, str], float]] = []
            if res.kind == "vector":
                vec = res.value
                for i, labels in enumerate(vec.labels):
                    out.append((dict(labels), float(vec.values[i, 0])))
            elif res.kind == "scalar":
                out.append(({}, float(res.value)))
            else:
                raise ValueError(f"rule result is a {res.kind}, not a vector or scalar")
            if rule.query_kind == "anomaly":
                out += self._anomaly_events(rule, ts)
            return out
        if rule.query_kind == "logql":
            if self.logql is None:
                raise ValueError("LogQL is not available")
            return [(dict(labels), v) for labels, v in self.logql(rule.query, t_ms)]
        return self._composite(rule, ts)

    def _anomaly_events(self, rule: Rule, ts: float) -> list[tuple[dict[str, str], float]]:
        from pantau.query.promql import parse_selector

        matchers: list[Matcher] = parse_selector(rule.anomaly_matchers) if rule.anomaly_matchers != "{}" else []
        best: dict[str, tuple[dict[str, str], float]] = {}
        for t, labels, score in list(self.anomaly_events):
            if t < ts - 300 or t > ts or score <= rule.anomaly_threshold:
                continue
            if all(m.matches(labels.get(m.name, "")) for m in matchers):
                k = _fp(labels)
                if k not in best or best[k][1] < score:
                    best[k] = (labels, score)
        return list(best.values())

    def _composite(self, rule: Rule, ts: float) -> list[tuple[dict[str, str], float]]:
        by = rule.composite_by
        present: dict[tuple, set[str]] = {}
        for name in rule.composite_alerts:
            for labels, seen in self.firing_seen.get(name, {}).values():
                if seen >= ts - rule.composite_within:
                    present.setdefault(tuple(labels.get(b, "") for b in by), set()).add(name)
        need = set(rule.composite_alerts)
        out = []
        for key, names in present.items():
            if (rule.composite_mode == "all" and names >= need) or (rule.composite_mode == "any" and names):
                out.append(({b: v for b, v in zip(by, key, strict=True) if v}, float(len(names))))
        return out

    def _record(self, rs: RuleState, result, batch: SampleBatch, current: set[tuple], t_ms: int) -> None:
        seen: set[tuple] = set()
        for labels, value in result:
            lab = dict(labels)
            lab[METRIC_NAME] = rs.rule.name
            lab.update(rs.rule.labels)
            key = make_labels(lab)
            if key in seen:
                raise ValueError("vector contains metrics with the same labelset after applying rule labels")
            seen.add(key)
            batch.append(key, t_ms, value)
            current.add(key)

    def _alert_eval(self, rs: RuleState, result, ts: float, group: RuleGroup) -> None:
        rule = rs.rule
        seen: set[str] = set()
        for labels, value in result:
            labels = {k: v for k, v in labels.items() if k != METRIC_NAME}
            # templates see the series' labels, as in Prometheus (before rule labels are added)
            exp_labels = dict(labels)
            for k, v in rule.labels.items():
                exp_labels[k] = expand_rule_template(v, labels, value, self.external_labels, self.external_url)
            exp_labels["alertname"] = rule.name
            exp_labels = {k: v for k, v in exp_labels.items() if v != ""}
            annotations = {k: expand_rule_template(v, labels, value, self.external_labels, self.external_url)
                           for k, v in rule.annotations.items()}
            fp = _fp(exp_labels)
            if fp in seen:
                raise ValueError("vector contains metrics with the same labelset after applying alert labels")
            seen.add(fp)
            a = rs.active.get(fp)
            if a is not None and a.state != "inactive":
                a.value, a.annotations = value, annotations
                continue
            rs.active[fp] = ActiveAlert(exp_labels, annotations, "pending", ts, value)
        if group.limit and len(seen) > group.limit:
            rs.active = {}
            raise ValueError(f"exceeded limit of {group.limit} with {len(seen)} alerts")
        for fp, a in list(rs.active.items()):
            if fp not in seen:
                if rule.keep_firing_for and a.state == "firing":
                    if not a.keep_firing_since:
                        a.keep_firing_since = ts
                    if ts - a.keep_firing_since < rule.keep_firing_for:
                        continue
                if a.state == "pending" or (a.resolved_at and ts - a.resolved_at > RESOLVED_RETENTION):
                    del rs.active[fp]
                    continue
                if a.state != "inactive":
                    a.state, a.resolved_at = "inactive", ts
                continue
            a.keep_firing_since = 0.0
            if a.state == "pending" and ts - a.active_at >= rule.for_:
                a.state, a.fired_at = "firing", ts
        for a in rs.active.values():
            if a.state == "firing":
                self.firing_seen.setdefault(rule.name, {})[_fp(a.labels)] = (a.labels, ts)

    def _alert_series(self, rs: RuleState, batch: SampleBatch, current: set[tuple], t_ms: int) -> None:
        for a in rs.active.values():
            if a.state == "inactive":
                continue
            base = {k: v for k, v in a.labels.items() if k != METRIC_NAME}
            alerts = make_labels({**base, METRIC_NAME: "ALERTS", "alertstate": a.state})
            for_state = make_labels({**base, METRIC_NAME: "ALERTS_FOR_STATE"})
            batch.append(alerts, t_ms, 1.0)
            batch.append(for_state, t_ms, float(int(a.active_at)))
            current.add(alerts)
            current.add(for_state)

    def _to_send(self, rs: RuleState, ts: float, interval: float) -> list[Alert]:
        out = []
        gen = ""
        for a in rs.active.values():
            if a.state == "pending":
                continue
            if a.resolved_at and a.last_sent_at >= a.resolved_at:
                continue
            if not a.resolved_at and a.last_sent_at + self.resend_delay > ts:
                continue
            gen = gen or f"{self.external_url}/graph?g0.expr={urllib.parse.quote_plus(rs.rule.query)}&g0.tab=1"
            a.last_sent_at = ts
            a.valid_until = ts + 4 * max(interval, self.resend_delay)
            labels = {**self.external_labels, **a.labels}
            out.append(Alert(labels, dict(a.annotations), a.fired_at, a.resolved_at or a.valid_until, gen))
        return out

    # --- views for the API --------------------------------------------------------------------

    def snapshot(self) -> list[GroupState]:
        with self._lock:
            return list(self.groups.values())

    def note_anomaly(self, payload) -> None:
        """Bus topic `anomaly`: an Event (or dict) with labels and a score."""
        labels = getattr(payload, "labels", None) or (payload.get("labels") if isinstance(payload, dict) else None)
        data = getattr(payload, "data", None) or (payload.get("data") if isinstance(payload, dict) else {}) or {}
        score = data.get("score", payload.get("score") if isinstance(payload, dict) else None)
        if labels is None or score is None:
            return
        self.anomaly_events.append((self.clock.now(), {str(k): str(v) for k, v in labels.items()}, float(score)))
