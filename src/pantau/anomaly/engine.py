"""The anomaly engine: the detectors over every watched series, inside the hub.

At each evaluation interval, for each watch (a PromQL expression), the engine evaluates the
expression over the steps since it last did (a range query through the PromQL engine, so it
reads only through the store interface), feeds each output series' new points to that
series' ensemble, and then

* writes the results back as series, so PromQL, dashboards and alert rules can use them:
  `pantau_anomaly_score`, `pantau_anomaly_expected`, `pantau_anomaly_lower`,
  `pantau_anomaly_upper`, labelled with the watch (`anomaly_watch`) and the series' labels;
* opens an anomaly event when the score reaches `threshold` and ends it once the score has
  stayed under `close_threshold` for `close_after` points (hysteresis: one event per anomaly,
  not one per point), stores it and publishes it on the bus (topic "anomaly");
* evaluates the business rules at the same instant, with events of their own.

What each series has learned is saved in the store (`put_state("anomaly", ...)`) every
`checkpoint_interval` and on shutdown, and loaded on start, so a restart resumes where it
stopped (the gap is scored, up to `max_catchup`). A series seen for the first time learns from
the stored history of the last `warmup` before it is judged, instead of waiting for new data.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import orjson

from pantau.anomaly.config import AnomalyConfig, WatchConfig
from pantau.anomaly.ensemble import Ensemble, EnsembleParams, Scored
from pantau.anomaly.rules import Rule, parse_rules
from pantau.bus import Bus
from pantau.model import Labels, SampleBatch, make_labels, series_key
from pantau.query.promql import Engine as PromQL
from pantau.query.promql import PromQLError
from pantau.store.base import Event, Store

log = logging.getLogger("pantau.anomaly")
NAMESPACE = "anomaly"
OUTPUT_METRICS = ("pantau_anomaly_score", "pantau_anomaly_expected", "pantau_anomaly_lower", "pantau_anomaly_upper")


def output_labels(watch: str, labels: Labels) -> dict[str, str]:
    """Labels of the series the engine writes for one watched series: its own, its metric name
    as `metric`, and the watch."""
    out = {k: v for k, v in labels if k != "__name__"}
    name = dict(labels).get("__name__")
    if name:
        out["metric"] = name
    out["anomaly_watch"] = watch
    return out


@dataclass
class OpenEvent:
    id: str
    start_ms: int
    max_score: float
    below: int = 0  # points in a row under close_threshold


@dataclass
class SeriesState:
    key: str
    watch: str
    labels: Labels
    model: Ensemble
    source: str = "new"  # "state": loaded from the store; "history": warmed up from stored data
    open: OpenEvent | None = None
    dirty: bool = True
    last_score: float = 0.0
    last_value: float = float("nan")
    outputs: tuple[SampleBatch, list[int]] | None = None  # the score series' refs in a write batch
    output_keys: list[tuple[Labels, str]] | None = None  # the score series' label sets and keys
    last_stamp: int = -1  # timestamp of the last raw sample fed (plain selectors)

    def to_bytes(self) -> bytes:
        model = self.model.to_bytes()
        extra = orjson.dumps({"open": self.open.__dict__ if self.open else None})
        return struct.pack("<I", len(model)) + model + extra

    @classmethod
    def from_bytes(cls, key: str, data: bytes, params: EnsembleParams) -> SeriesState:
        (n,) = struct.unpack_from("<I", data)
        model = Ensemble.from_bytes(data[4:4 + n], params)
        extra = orjson.loads(data[4 + n:])
        watch, _, raw = key.partition("|")
        labels = tuple(tuple(p) for p in orjson.loads(raw))
        st = cls(key, watch, labels, model, "state", dirty=False)  # type: ignore[arg-type]
        if extra.get("open"):
            st.open = OpenEvent(**extra["open"])
        return st


@dataclass
class RuleState:
    open: dict[str, OpenEvent] = field(default_factory=dict)  # series key -> event


@dataclass
class EvalStats:
    series: int = 0
    points: int = 0
    opened: int = 0
    closed: int = 0
    seconds: float = 0.0


def _fresh(vec, rows, last_stamps: np.ndarray) -> np.ndarray:
    """Steps of result rows that bring a new value. A plain selector repeats a series' last
    sample at every step of the 5-minute lookback: fed to the detectors, those copies would
    look like a flat line (MAD 0) or a sustained shift. Computed expressions (rates, quantiles)
    have no sample timestamps and are new at every step. `last_stamps`: per row, the stamp of
    the sample fed last (-1: none)."""
    present = vec.present[rows]
    if vec.stamps is None:
        return present
    stamps = vec.stamps[rows]
    prev = np.concatenate([last_stamps[:, None], stamps[:, :-1]], axis=1)
    # a step whose sample is the previous step's sample is a copy (absent steps do not count)
    new = stamps != prev
    new[:, 1:] |= ~present[:, :-1]
    return present & new


class AnomalyEngine:
    def __init__(self, store: Store, bus: Bus | None, config: AnomalyConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.bus = bus
        self.config = config
        self.clock = clock
        self.params = config.detectors.params()
        self.watches: list[WatchConfig] = config.all_watches()
        self.rules: list[Rule] = parse_rules(config.rules)
        self.promql = PromQL(store)
        self.series: dict[str, SeriesState] = {}
        self.watch_last: dict[str, int] = {}  # watch -> last evaluated step (ms)
        self.rule_states: dict[str, RuleState] = {r.name: RuleState() for r in self.rules}
        self.step_ms = max(1, int(config.step * 1000))
        self.last_stats = EvalStats()
        self._lock = threading.Lock()
        self._task: asyncio.Task | None = None
        self._last_checkpoint = 0.0
        self._loaded = False
        self._keys: dict[tuple[str, Labels], str] = {}  # (watch, labels) -> state key

    # --- persistence -----------------------------------------------------------------------
    def load(self) -> None:
        """Baselines and open events saved by the previous run."""
        saved = self.store.list_state(NAMESPACE)
        for key, blob in saved.items():
            try:
                if key.startswith("watch:"):
                    self.watch_last[key[6:]] = int(blob.decode())
                elif key.startswith("rule:"):
                    name = key[5:]
                    if name in self.rule_states:
                        self.rule_states[name].open = {k: OpenEvent(**v) for k, v in orjson.loads(blob).items()}
                else:
                    st = SeriesState.from_bytes(key, blob, self.params)
                    self.series[key] = st
            except (ValueError, struct.error, TypeError, orjson.JSONDecodeError):
                log.warning("anomaly: ignoring unreadable saved state %r", key)
        self._loaded = True
        if saved:
            log.info("anomaly: resumed %d series baselines", len(self.series))

    def checkpoint(self) -> int:
        """Save every series that learned something since the last checkpoint."""
        n = 0
        with self._lock:
            for st in self.series.values():
                if st.dirty:
                    self.store.put_state(NAMESPACE, st.key, st.to_bytes())
                    st.dirty = False
                    n += 1
            for watch, t in self.watch_last.items():
                self.store.put_state(NAMESPACE, f"watch:{watch}", str(t).encode())
            for name, rs in self.rule_states.items():
                self.store.put_state(NAMESPACE, f"rule:{name}",
                                     orjson.dumps({k: v.__dict__ for k, v in rs.open.items()}))
        self._last_checkpoint = time.monotonic()
        return n

    # --- evaluation ------------------------------------------------------------------------
    def evaluate(self, now_s: float | None = None) -> EvalStats:
        """One evaluation: every watch up to `now`, then the business rules."""
        if not self._loaded:
            self.load()
        t0 = time.perf_counter()
        now_ms = int((self.clock() if now_s is None else now_s) * 1000)
        end = now_ms - now_ms % self.step_ms
        stats = EvalStats()
        batch = SampleBatch()
        with self._lock:
            for watch in self.watches:
                try:
                    self._evaluate_watch(watch, end, batch, stats)
                except PromQLError as exc:
                    log.warning("anomaly: watch %s: %s", watch.name, exc)
            if self.rules:
                self._evaluate_rules(end, stats)
        if len(batch):
            self.store.write(batch)
        stats.seconds = time.perf_counter() - t0
        self.last_stats = stats
        if time.monotonic() - self._last_checkpoint >= self.config.checkpoint_interval:
            self.checkpoint()
        return stats

    def _evaluate_watch(self, watch: WatchConfig, end: int, batch: SampleBatch, stats: EvalStats) -> None:
        step = self.step_ms
        last = self.watch_last.get(watch.name)
        warmup_ms = int(self.config.warmup * 1000)
        if last is None:
            # first time: everything stored in the warmup period is learned from, not judged
            start, live_from = end - warmup_ms, end + step
        else:
            start = max(last + step, end - int(self.config.max_catchup * 1000))
            live_from = start
        if start > end:
            return
        result = self.promql.range(watch.expr, start, end, step, max_resolution_ms=0)
        steps = np.arange(start, end + 1, step, dtype=np.int64)
        new_series = [i for i, lab in enumerate(result.labels) if self._key(watch, lab) not in self.series]
        history = None
        if new_series and last is not None:
            # a series appearing now learns from what is stored before it is judged
            history = self.promql.range(watch.expr, start - warmup_ms, start - step, step, max_resolution_ms=0)
            history_rows = {series_key(lab): i for i, lab in enumerate(history.labels)}
        single: list[tuple[SeriesState, float]] = []
        states: list[SeriesState] = []
        for labels in result.labels:
            key = self._key(watch, labels)
            st = self.series.get(key)
            if st is None:
                st = self.series[key] = SeriesState(key, watch.name, labels, Ensemble(self.params), "new")
                if history is not None:
                    row = history_rows.get(series_key(labels))
                    if row is not None:
                        hmask = _fresh(history, [row], np.array([-1]))[0]
                        hsteps = np.arange(start - warmup_ms, start, step, dtype=np.int64)[: len(hmask)]
                        if hmask.any():
                            st.model.score(hsteps[hmask], history.values[row][hmask])
                            st.source = "history"
                elif last is None:
                    st.source = "history"
            states.append(st)
        fresh = _fresh(result, slice(None), np.array([st.last_stamp for st in states], dtype=np.int64))
        if result.stamps is not None and len(states):
            # the stamp of each row's last fresh step
            cols = np.where(fresh, np.arange(len(steps))[None, :], -1).max(axis=1)
            for st, c, stamp in zip(states, cols.tolist(), result.stamps[np.arange(len(states)), np.maximum(cols, 0)]
                                    .tolist(), strict=True):
                if c >= 0:
                    st.last_stamp = stamp
        one_step = len(steps) == 1
        t_first = int(steps[0]) if len(steps) else 0
        for i, st in enumerate(states):
            present = fresh[i]
            if one_step:  # the usual evaluation: one new step per series, scored with scalar arithmetic
                if present[0] and t_first > st.model.last_t:
                    single.append((st, float(result.values[i, 0])))
                continue
            t = steps[present]
            x = result.values[i][present]
            keep = t > st.model.last_t
            t, x = t[keep], x[keep]
            if not len(t):
                continue
            scored = st.model.score(t, x)
            st.dirty = True
            stats.series += 1
            stats.points += len(t)
            live = t >= live_from
            if live.any():
                self._judge(watch, st, scored, live, batch, stats)
        if single:
            live = np.array([t_first >= live_from])
            for st, x in single:
                scored = st.model.score_point(t_first, x)
                st.dirty = True
                if live[0]:
                    self._judge(watch, st, scored, live, batch, stats)
            stats.series += len(single)
            stats.points += len(single)
        self.watch_last[watch.name] = end

    def _key(self, watch: WatchConfig, labels: Labels) -> str:
        key = self._keys.get((watch.name, labels))
        if key is None:
            key = self._keys[(watch.name, labels)] = f"{watch.name}|{series_key(labels)}"
        return key

    def _judge(self, watch: WatchConfig, st: SeriesState, scored: Scored, live: np.ndarray,
               batch: SampleBatch, stats: EvalStats) -> None:
        cfg = self.config
        if st.outputs is None or st.outputs[0] is not batch:
            if st.output_keys is None:
                base = output_labels(watch.name, st.labels)
                outs = [make_labels({**base, "__name__": name}) for name in OUTPUT_METRICS]
                st.output_keys = [(lab, series_key(lab)) for lab in outs]
            st.outputs = (batch, [batch.add_new_series(lab, key) for lab, key in st.output_keys])
        refs = st.outputs[1]
        for i in (np.flatnonzero(live).tolist() if len(live) > 1 else (0,)):
            t = int(scored.t_ms[i])
            s = float(scored.raw[i])
            for ref, v in zip(refs, (s, float(scored.expected[i]), float(scored.lower[i]), float(scored.upper[i])),
                              strict=True):
                if v == v and abs(v) != float("inf"):
                    batch.ref.append(ref)
                    batch.timestamp_ms.append(t)
                    batch.value.append(v)
            st.last_score, st.last_value = s, float(scored.x[i])
            ev = st.open
            if ev is None:
                if s >= cfg.threshold:
                    self._open(watch, st, scored, i)
                    stats.opened += 1
                continue
            if s > ev.max_score:
                ev.max_score = s
            if s < cfg.close_threshold:
                ev.below += 1
                if ev.below >= cfg.close_after:
                    self._close(watch, st, t, s)
                    stats.closed += 1
            else:
                ev.below = 0

    def _event_data(self, watch: WatchConfig, st: SeriesState, scored: Scored, i: int) -> dict:
        def num(v: float) -> float | None:
            v = float(v)
            return v if np.isfinite(v) else None

        return {
            "type": "statistical", "watch": watch.name, "expr": watch.expr, "series": dict(st.labels),
            "reason": scored.explain(i, watch.description or watch.name, watch.unit),
            "score": float(scored.raw[i]), "value": num(scored.x[i]), "expected": num(scored.expected[i]),
            "lower": num(scored.lower[i]), "upper": num(scored.upper[i]), "detector": scored.main_detector(i),
            "unit": watch.unit,
        }

    def _open(self, watch: WatchConfig, st: SeriesState, scored: Scored, i: int) -> None:
        t = int(scored.t_ms[i])
        data = self._event_data(watch, st, scored, i)
        data["max_score"] = data["score"]
        labels = {**{k: v for k, v in st.labels if k != "__name__"}, "anomaly_watch": watch.name,
                  "anomaly_type": "statistical"}
        event = Event("anomaly", t * 1_000_000, severity="critical" if data["score"] >= 0.9 else "warning",
                      title=data["reason"], labels=labels, data=data)
        eid = self.store.put_event(event)
        st.open = OpenEvent(eid, t, data["score"])
        self._publish("open", event)

    def _close(self, watch: WatchConfig, st: SeriesState, t: int, score: float) -> None:
        ev = st.open
        st.open = None
        if ev is None:
            return
        event = self.store.get_event(ev.id)
        if event is None:
            return
        event.end_ns = (t - (self.config.close_after - 1) * self.step_ms) * 1_000_000
        event.data["max_score"] = max(ev.max_score, event.data.get("max_score", 0.0))
        if ev.max_score >= 0.9:
            event.severity = "critical"
        event.data["end_score"] = score
        self.store.put_event(event)
        self._publish("resolved", event, score)

    def _publish(self, status: str, event: Event, score: float | None = None) -> None:
        """On the bus: `status` open or resolved, the event's fields, and in `data.score` the
        score now (the peak stays in `data.max_score`), so a subscriber that reacts to high
        scores is not re-triggered by the end of an anomaly."""
        if self.bus is not None:
            data = dict(event.data) if score is None else {**event.data, "score": score}
            self.bus.publish("anomaly", {"status": status, "id": event.id, "kind": event.kind,
                                         "start_ns": event.start_ns, "end_ns": event.end_ns,
                                         "severity": event.severity, "title": event.title,
                                         "labels": dict(event.labels), "data": data})

    # --- business rules --------------------------------------------------------------------
    def _evaluate_rules(self, end: int, stats: EvalStats) -> None:
        values: dict[str, dict[str, tuple[Labels, float]]] = {}
        firing: dict[str, dict[str, tuple[Labels, float, str]]] = {}
        for rule in self.rules:
            if rule.kind == "composite":
                continue
            try:
                res = self.promql.instant(rule.query(), end)
            except PromQLError as exc:
                log.warning("anomaly: rule %s: %s", rule.name, exc)
                continue
            vals: dict[str, tuple[Labels, float]] = {}
            if res.kind == "vector":
                vec = res.value
                for i, labels in enumerate(vec.labels):
                    if vec.present[i, 0]:
                        vals[series_key(labels)] = (labels, float(vec.values[i, 0]))
            elif res.kind == "scalar":
                vals["{}"] = ((), float(res.value))
            values[rule.name] = vals
            firing[rule.name] = {k: (lab, v, rule.reason(v)) for k, (lab, v) in vals.items() if rule.condition(v)}
        active = {st.watch: f"{st.watch} anomalous" for st in self.series.values() if st.open is not None}
        for rule in self.rules:
            if rule.kind != "composite":
                continue
            names = rule.all or rule.any
            reasons = []
            for n in names:
                if firing.get(n):
                    reasons.append(next(iter(firing[n].values()))[2])
                elif n in active:
                    reasons.append(self._open_reason(n))
            ok = len(reasons) == len(names) if rule.all else bool(reasons)
            reason = f"{rule.what}: " + "; and ".join(reasons)
            firing[rule.name] = {"{}": ((), float(len(reasons)), reason)} if ok else {}
        for rule in self.rules:
            rs = self.rule_states[rule.name]
            now_firing = firing.get(rule.name, {})
            for key, (labels, v, reason) in now_firing.items():
                ev = rs.open.get(key)
                if ev is None:
                    lab = {**{k: x for k, x in labels if k != "__name__"}, "anomaly_rule": rule.name,
                           "anomaly_type": "business"}
                    event = Event("anomaly", end * 1_000_000, severity=rule.severity, title=reason, labels=lab,
                                  data={"type": "business", "rule": rule.name, "kind": rule.kind, "reason": reason,
                                        "value": v, "query": rule.query() if rule.kind != "composite" else "",
                                        "series": dict(labels), "score": 1.0})
                    eid = self.store.put_event(event)
                    rs.open[key] = OpenEvent(eid, end, 1.0)
                    self._publish("open", event)
                    stats.opened += 1
                else:
                    ev.below = 0
            for key in list(rs.open):
                if key in now_firing:
                    continue
                ev = rs.open[key]
                ev.below += 1
                if ev.below >= self.config.close_after:
                    del rs.open[key]
                    event = self.store.get_event(ev.id)
                    if event is not None:
                        event.end_ns = end * 1_000_000
                        self.store.put_event(event)
                        self._publish("resolved", event, 0.0)
                    stats.closed += 1

    def _open_reason(self, watch: str) -> str:
        for st in self.series.values():
            if st.watch == watch and st.open is not None:
                event = self.store.get_event(st.open.id)
                if event is not None:
                    return event.title
        return f"{watch} is anomalous"

    # --- running in the hub ----------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.load)
        self._task = asyncio.create_task(self._run(), name="anomaly-engine")

    async def _run(self) -> None:
        interval = self.config.evaluation_interval
        while True:
            started = time.monotonic()
            try:
                stats = await asyncio.to_thread(self.evaluate)
                if stats.opened or stats.closed:
                    log.info("anomaly: %d series, %d points, %d anomalies opened, %d ended (%.3fs)",
                             stats.series, stats.points, stats.opened, stats.closed, stats.seconds)
            except Exception:
                log.exception("anomaly: evaluation failed")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await asyncio.to_thread(self.checkpoint)
