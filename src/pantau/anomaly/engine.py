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
import hashlib
import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson

from pantau.anomaly.config import AnomalyConfig, WatchConfig
from pantau.anomaly.ensemble import Ensemble, EnsembleParams, Scored
from pantau.anomaly.rules import BusinessRules, OpenEvent, parse_rules
from pantau.bus import Bus
from pantau.model import Labels, SampleBatch, make_labels, series_key
from pantau.query.promql import Engine as PromQL
from pantau.query.promql import PromQLError
from pantau.query.promql.values import Vector
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
    # the label sets and keys of the four score series, made once (see AnomalyEngine._outputs)
    outputs: tuple[tuple[Labels, ...], tuple[str, ...]] | None = None
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


def event_id(key: str, t_ms: int) -> str:
    """An anomaly's id, from its series and start. After a crash the engine resumes from its
    last checkpoint and scores the steps since again; an anomaly that opened (or ended) in
    between is found again with the same id and its stored event updated, not stored twice.
    That is what lets checkpoints be minutes apart instead of after every evaluation."""
    return hashlib.blake2b(f"{key}@{t_ms}".encode(), digest_size=16).hexdigest()


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
        self.rules = BusinessRules(parse_rules(config.rules), store, self._publish, config.close_after)
        self.promql = PromQL(store)
        self.series: dict[str, SeriesState] = {}
        self.watch_last: dict[str, int] = {}  # watch -> last evaluated step (ms)
        self.step_ms = max(1, int(config.step * 1000))
        self.last_stats = EvalStats()
        self._lock = threading.Lock()
        self._task: asyncio.Task | None = None
        self._last_checkpoint = 0.0
        self._loaded = False
        # watch -> labels -> state: one lookup per series and evaluation (labels as the
        # PromQL engine returns them; `self.series` is keyed by the saved text key)
        self._by_labels: dict[str, dict[Labels, SeriesState]] = {}

    # --- persistence -----------------------------------------------------------------------
    def load(self) -> None:
        """Baselines and open events saved by the previous run."""
        saved = self.store.list_state(NAMESPACE)
        for key, blob in saved.items():
            try:
                if key.startswith("watch:"):
                    self.watch_last[key[6:]] = int(blob.decode())
                elif key.startswith("rule:"):
                    self.rules.load_state(key[5:], orjson.loads(blob))
                else:
                    st = SeriesState.from_bytes(key, blob, self.params)
                    self.series[key] = st
                    self._by_labels.setdefault(st.watch, {})[st.labels] = st
            except (ValueError, struct.error, TypeError, orjson.JSONDecodeError):
                log.warning("anomaly: ignoring unreadable saved state %r", key)
        self._loaded = True
        if saved:
            log.info("anomaly: resumed %d series baselines", len(self.series))

    def checkpoint(self) -> int:
        """Save every series that learned something since the last checkpoint, in one store
        call (one transaction in SQLite: saved one by one, each its own commit, 5,000 series
        took ~0.4 s, and with the default intervals this runs after every evaluation)."""
        with self._lock:
            dirty = [st for st in self.series.values() if st.dirty]
            items: dict[str, bytes | None] = {st.key: st.to_bytes() for st in dirty}
            for watch, t in self.watch_last.items():
                items[f"watch:{watch}"] = str(t).encode()
            for name, state in self.rules.state().items():
                items[f"rule:{name}"] = orjson.dumps(state)
            self.store.put_states(NAMESPACE, items)
            for st in dirty:
                st.dirty = False
        self._last_checkpoint = time.monotonic()
        return len(dirty)

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
            if self.rules.rules:
                opened, closed = self.rules.evaluate(self.promql, end, self._open_reason)
                stats.opened += opened
                stats.closed += closed
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
        index = self._by_labels.setdefault(watch.name, {})
        found = [index.get(lab) for lab in result.labels]
        if any(st is None for st in found):
            self._new_series(watch, result, found, index, start, last)
        states: list[SeriesState] = found  # type: ignore[assignment]  # every row has its state now
        n = len(states)
        last_stamps = np.fromiter((st.last_stamp for st in states), dtype=np.int64, count=n)
        fresh = _fresh(result, slice(None), last_stamps)
        if result.stamps is not None and n:
            # the stamp of each row's last fresh step
            cols = np.where(fresh, np.arange(len(steps))[None, :], -1).max(axis=1)
            rows = np.flatnonzero(cols >= 0)
            for i, stamp in zip(rows.tolist(), result.stamps[rows, cols[rows]].tolist(), strict=True):
                states[i].last_stamp = stamp
        if len(steps) == 1:  # the usual evaluation: one new step per series
            t = int(steps[0])
            rows = np.flatnonzero(fresh[:, 0])
            single = [(states[i], x) for i, x in zip(rows.tolist(), result.values[rows, 0].tolist(), strict=True)
                      if t > states[i].model.last_t]
            if single:
                self._score_step(watch, single, t, t >= live_from, batch, stats)
            self.watch_last[watch.name] = end
            return
        for i, st in enumerate(states):
            present = fresh[i]
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
        self.watch_last[watch.name] = end

    def _new_series(self, watch: WatchConfig, result: Vector, found: list[SeriesState | None],
                    index: dict[Labels, SeriesState], start: int, last: int | None) -> None:
        """States for the rows of `result` seen for the first time (filled into `found`). A
        series appearing after the watch's first evaluation learns from what is stored before
        it is judged; at the first evaluation the range read itself is the warm-up."""
        step = self.step_ms
        warmup_ms = int(self.config.warmup * 1000)
        history = None
        if last is not None:
            history = self.promql.range(watch.expr, start - warmup_ms, start - step, step, max_resolution_ms=0)
            history_rows = {series_key(lab): i for i, lab in enumerate(history.labels)}
        for i, labels in enumerate(result.labels):
            if found[i] is not None:
                continue
            key = f"{watch.name}|{series_key(labels)}"
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
                else:
                    st.source = "history"
            found[i] = index[labels] = st

    def _outputs(self, watch: WatchConfig, st: SeriesState) -> tuple[tuple[Labels, ...], tuple[str, ...]]:
        """The four score series' label sets and keys for one watched series, made once: at
        every evaluation they would cost more than the series' scoring."""
        if st.outputs is None:
            base = output_labels(watch.name, st.labels)
            labels = tuple(make_labels({**base, "__name__": name}) for name in OUTPUT_METRICS)
            st.outputs = (labels, tuple(series_key(lab) for lab in labels))
        return st.outputs

    def _score_step(self, watch: WatchConfig, single: list[tuple[SeriesState, float]], t: int, live: bool,
                    batch: SampleBatch, stats: EvalStats) -> None:
        """One new point for each of many series: scored one by one (scalar arithmetic), then
        the score series written and the events checked for all of them at once, with NumPy
        over columns instead of Python per series and value.

        Only the one-element arrays of each result are kept, not the result objects (except
        for series that may open or end an event): thousands of objects alive across the loop
        would survive into the garbage collector's oldest generation and trigger full
        collections (~70 ms at 5,000 series) every other evaluation."""
        n = len(single)
        stats.series += n
        stats.points += n
        threshold = self.config.threshold
        cols: tuple[list[np.ndarray], ...] = ([], [], [], [])  # score, expected, lower, upper
        raw, expected, lower, upper = (c.append for c in cols)
        watched: dict[int, Scored] = {}  # series that may open or end an event
        for k, (st, x) in enumerate(single):
            sc = st.model.score_point(t, x)
            st.dirty = True
            if live:
                raw(sc.raw)
                expected(sc.expected)
                lower(sc.lower)
                upper(sc.upper)
                if st.open is not None or sc.raw[0] >= threshold:
                    watched[k] = sc
        if not live:
            return
        values = np.empty((n, 4))
        for j, col in enumerate(cols):
            values[:, j] = np.concatenate(col)
        states = [st for st, _ in single]
        outs = [self._outputs(watch, st) for st in states]
        first = batch.add_new_series_many([lab for o in outs for lab in o[0]], [k for o in outs for k in o[1]])
        keep = np.isfinite(values)
        refs = np.arange(first, first + 4 * n, dtype=np.int64).reshape(n, 4)
        batch.ref.extend(refs[keep].tolist())
        kept = values[keep].tolist()
        batch.value.extend(kept)
        batch.timestamp_ms.extend([t] * len(kept))
        for (st, x), s in zip(single, values[:, 0].tolist(), strict=True):
            st.last_score, st.last_value = s, x
        for k, sc in watched.items():
            st = states[k]
            self._track(watch, st, sc, 0, t, st.last_score, stats)

    def _judge(self, watch: WatchConfig, st: SeriesState, scored: Scored, live: np.ndarray,
               batch: SampleBatch, stats: EvalStats) -> None:
        """Several new points of one series (catch-up after a gap): score series and events."""
        labels, keys = self._outputs(watch, st)
        first = batch.add_new_series_many(labels, keys)
        for i in np.flatnonzero(live).tolist():
            t = int(scored.t_ms[i])
            s = float(scored.raw[i])
            for ref, v in enumerate((s, float(scored.expected[i]), float(scored.lower[i]), float(scored.upper[i])),
                                    first):
                if v == v and abs(v) != float("inf"):
                    batch.ref.append(ref)
                    batch.timestamp_ms.append(t)
                    batch.value.append(v)
            st.last_score, st.last_value = s, float(scored.x[i])
            self._track(watch, st, scored, i, t, s, stats)

    def _track(self, watch: WatchConfig, st: SeriesState, scored: Scored, i: int, t: int, s: float,
               stats: EvalStats) -> None:
        """Open, follow and end the series' anomaly event for point i of `scored` (score s)."""
        cfg = self.config
        ev = st.open
        if ev is None:
            if s >= cfg.threshold:
                self._open(watch, st, scored, i)
                stats.opened += 1
            return
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
        event = Event("anomaly", t * 1_000_000, id=event_id(st.key, t),
                      severity="critical" if data["score"] >= 0.9 else "warning",
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
    def _open_reason(self, watch: str) -> str | None:
        """The reason of an open anomaly of `watch` (composite rules may name watches)."""
        for st in self.series.values():
            if st.watch == watch and st.open is not None:
                event = self.store.get_event(st.open.id)
                return event.title if event is not None else f"{watch} is anomalous"
        return None

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
