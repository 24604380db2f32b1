"""The ensemble: every detector over one series, combined into one score in [0, 1] with the
reason a person can read.

Combination. The point detectors (robust z-score, IQR fences, EWMA, CUSUM) are combined as a
noisy OR, 1 - prod(1 - w_i * s_i): one confident detector is enough, and several half-sure ones
add up. Where the seasonal profile is trusted for the point's hour, the result is capped by the
seasonal score: a value that is usual for a Monday 09:00 is not an anomaly however far it is
from the weekend's values the trailing window holds. The other way round, a value extremely
unusual for its hour (`seasonal_alone`) is an anomaly even inside the recent range (a day that
stays flat where it always peaks). On NAB the cap is what helps most (see docs/benchmarks.md).

Records. The cap trusts the hour's usual spread, which a series with recurring spikes widens
until a spike larger than any before is "usual for 14:00". A value beyond everything the series
has ever shown (above its all-time maximum or below its all-time minimum, two numbers of state)
is not capped: the point detectors decide alone. Recurring spikes of the usual height stay
capped; the first one higher than all of them does not (on NAB: +4.6, see docs/benchmarks.md).

Habits. A transition the series has made often before (calm to a 12-MAD burst, say) is not a
new onset: the onset score is capped by the transition-novelty member (`context`), except for
records and values far from their hour's usual level. Events use the score before this damping
(a long anomaly keeps repeating its own transition and must not end early).

Alerting on the onset. An anomaly is one event, not one alarm per point: after a point scores
above `refractory_level`, later points of the same excursion are damped for `refractory` points
(the anomaly's event stays open meanwhile, see the engine). This is also what NAB rewards: the
first detection in a window counts, every further one outside it costs.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from pantau.anomaly.changepoint import CUSUM, CUSUMParams
from pantau.anomaly.context import ContextParams, TransitionNovelty
from pantau.anomaly.ewma import EWMA, EWMAParams
from pantau.anomaly.iqr import IQRFences, IQRParams
from pantau.anomaly.output import DetectorOutput
from pantau.anomaly.reasons import direction, fmt_time, fmt_value
from pantau.anomaly.robust_z import RobustZ, RobustZParams
from pantau.anomaly.seasonal import Seasonal, SeasonalParams, slot_name
from pantau.anomaly.window import TrailingWindow

DETECTORS = ("robust_z", "iqr", "ewma", "cusum", "seasonal")
_MAGIC = b"PAE2"  # PAE1: the same without the all-time extremes and the transition counts
_EXTRA = "<ddbq"
_HEAD = "<4sddqddqqq3dqqqH"


@dataclass(frozen=True)
class EnsembleParams:
    window: int = 256  # trailing window of the robust z-score and IQR detectors (points)
    min_points: int = 24  # no score before this many points
    robust_z: RobustZParams = field(default_factory=RobustZParams)
    iqr: IQRParams = field(default_factory=IQRParams)
    ewma: EWMAParams = field(default_factory=EWMAParams)
    cusum: CUSUMParams = field(default_factory=CUSUMParams)
    seasonal: SeasonalParams = field(default_factory=SeasonalParams)
    weights: dict[str, float] = field(default_factory=lambda: {
        "robust_z": 1.0, "iqr": 0.8, "ewma": 0.8, "cusum": 1.0, "seasonal": 1.0})
    seasonal_gate: bool = True
    # ... and a value this unusual for its hour (seasonal score, ~10 standard deviations) is an
    # anomaly even inside the recent range: a day that stays flat where it always peaks
    seasonal_alone: float = 0.999
    # a value beyond the series' all-time range is not capped by the seasonal score
    records: bool = True
    record_margin: float = 0.02  # ... by this share of the all-time range (noise at a trough is no record)
    # the onset score is capped by how new the point's transition is (see pantau.anomaly.context),
    # except for records and where the hour's profile scores the value at least `context_exempt`
    context: ContextParams | None = field(default_factory=ContextParams)
    context_exempt: float = 0.99
    refractory: int = 200  # points damped after an onset (0: off)
    # an onset is a point whose onset score reaches this; the onset score is capped at 1 / (1 + k)
    # for a transition made k times, so an onset here means "new, or made at most four times".
    # Without that cap (one detector alone, or `context` off) the level is 0.5: "a detector is sure"
    refractory_level: float = 0.2
    only: str | None = None  # one detector alone (backtesting a single detector)

    @property
    def onset_level(self) -> float:
        """The onset score at which the refractory period starts (see `refractory_level`)."""
        return self.refractory_level if self.context is not None and not self.only else 0.5

    def __post_init__(self) -> None:
        if self.only is not None and self.only not in DETECTORS:
            raise ValueError(f"unknown detector {self.only!r}: choose one of {', '.join(DETECTORS)}")
        unknown = set(self.weights) - set(DETECTORS)
        if unknown:
            raise ValueError(f"unknown detector in weights: {', '.join(sorted(unknown))}")


@dataclass(slots=True)
class Scored:
    """A scored block: per point the ensemble score, each detector's output, the baseline band."""

    t_ms: np.ndarray
    x: np.ndarray
    score: np.ndarray  # the onset score: capped for habitual transitions, damped after an onset
    raw: np.ndarray  # the same before both: how anomalous each point is (events use it)
    detectors: Mapping[str, DetectorOutput]
    seasonal_kind: np.ndarray  # 1 weekly profile trusted, 2 daily, 0 none
    cusum_since: np.ndarray
    window_count: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    record: np.ndarray | None = None  # +1 above the all-time maximum, -1 below the minimum, 0

    def __len__(self) -> int:
        return len(self.score)

    def main_detector(self, i: int) -> str:
        """The detector that explains point i best: the seasonal profile when it is trusted and
        agrees, else the most confident one."""
        best, best_score = "robust_z", -1.0
        for name, out in self.detectors.items():
            s = float(out.score[i])
            if s > best_score:
                best, best_score = name, s
        if "seasonal" in self.detectors and self.seasonal_kind[i] and self.detectors["seasonal"].score[i] >= 0.5 \
                and best != "cusum":
            return "seasonal"
        return best

    def explain(self, i: int, what: str = "value", unit: str = "") -> str:
        """The reason, from the detector that explains point i best; when the seasonal profile
        is trusted and another detector spoke, the usual level for the hour is added."""
        name = self.main_detector(i)
        reason = self._explain(name, i, what, unit)
        if self.record is not None and self.record[i]:
            reason += f"; the {'highest' if self.record[i] > 0 else 'lowest'} value this series has shown"
        seasonal = self.detectors.get("seasonal")
        if name != "seasonal" and seasonal is not None and self.seasonal_kind[i]:
            slot = slot_name(int(self.t_ms[i]), self.seasonal_kind[i] == 1)
            reason += f"; usual for {slot}: {fmt_value(float(seasonal.expected[i]), unit)}"
        return reason

    def _explain(self, name: str, i: int, what: str, unit: str) -> str:
        out = self.detectors[name]
        x, z = float(self.x[i]), float(out.z[i])
        v = fmt_value(x, unit)
        if name == "seasonal":
            weekly = self.seasonal_kind[i] == 1
            return (f"{what} {v} is {abs(z):.1f} standard deviations {direction(z)} its usual "
                    f"{slot_name(int(self.t_ms[i]), weekly)} level ({fmt_value(float(out.expected[i]), unit)})")
        if name == "robust_z":
            return (f"{what} {v} is {abs(z):.1f} MADs {direction(z)} the median of its last "
                    f"{int(self.window_count[i])} values ({fmt_value(float(out.expected[i]), unit)})")
        if name == "iqr":
            return (f"{what} {v} is {abs(z):.1f} interquartile ranges {direction(z)} the Tukey fence of its "
                    f"last {int(self.window_count[i])} values (usual range {fmt_value(float(out.lower[i]), unit)}"
                    f" to {fmt_value(float(out.upper[i]), unit)})")
        if name == "ewma":
            return (f"{what} {v} is {abs(z):.1f} standard deviations {direction(z)} its moving average "
                    f"({fmt_value(float(out.expected[i]), unit)})")
        side = "up" if z >= 0 else "down"
        base = self.detectors.get("robust_z")
        ref = f" against a recent median of {fmt_value(float(base.expected[i]), unit)}" if base is not None else ""
        return (f"{what} has shifted {side} since {fmt_time(int(self.cusum_since[i]))}: now {v}{ref} "
                f"(CUSUM {abs(z):.1f})")


class _PointOutputs(Mapping):
    """The detectors' outputs for one point, built only when asked for (explaining an anomaly):
    the hub scores every series at every evaluation and explains a few."""

    def __init__(self, flat: np.ndarray, names: list[str]) -> None:
        self._flat, self._names = flat, names
        self._built: dict[str, DetectorOutput] | None = None

    def _outputs(self) -> dict[str, DetectorOutput]:
        if self._built is None:
            arr = self._flat
            self._built = {k: DetectorOutput(*(arr[6 + 5 * j + f: 7 + 5 * j + f] for f in range(5)))
                           for j, k in enumerate(self._names)}
        return self._built

    def __getitem__(self, key: str) -> DetectorOutput:
        return self._outputs()[key]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class Ensemble:
    """All detectors of one series and the state they learned."""

    def __init__(self, params: EnsembleParams = EnsembleParams()) -> None:
        self.p = params
        self.window = TrailingWindow(params.window, params.min_points)
        self.robust = RobustZ(params.robust_z)
        self.iqr = IQRFences(params.iqr)
        self.ewma = EWMA(params.ewma)
        self.cusum = CUSUM(params.cusum)
        self.seasonal = Seasonal(params.seasonal)
        self.context = TransitionNovelty(params.context or ContextParams())
        self.cooldown = 0  # points left in the refractory period
        self.hi = -math.inf  # all-time extremes of the values seen
        self.lo = math.inf
        self.last_t = -1  # timestamp (ms) of the last point seen
        self.seen = 0

    def score(self, t_ms: np.ndarray, x: np.ndarray) -> Scored:
        """Score a block of points (oldest first) and learn from it. Scoring a series in one block
        or in several gives the same scores (up to float rounding)."""
        t_ms = np.asarray(t_ms, dtype=np.int64)
        x = np.asarray(x, dtype=np.float64)
        n = len(x)
        if n == 1 and math.isfinite(x[0]):
            return self._score_one(int(t_ms[0]), float(x[0]))
        # NaN (and staleness markers) carry no information: score 0, learn nothing
        finite = np.isfinite(x)
        if not finite.all():
            return self._score_with_gaps(t_ms, x, finite)
        stats = self.window.stats(x)
        valid = stats.count >= self.p.min_points
        outs: dict[str, DetectorOutput] = {}
        robust = self.robust.score(x, stats)
        outs["robust_z"] = robust
        outs["iqr"] = self.iqr.score(x, stats)
        outs["ewma"] = self.ewma.score(x)
        outs["cusum"], since = self.cusum.score(t_ms, robust.z, valid)
        outs["seasonal"], kind = self.seasonal.score(t_ms, x)
        record = self._records(x, valid)
        for out in outs.values():
            out.score = np.where(valid, out.score, 0.0)
        if self.p.only:
            score = outs[self.p.only].score.copy()
            outs = {self.p.only: outs[self.p.only]}
        else:
            w = self.p.weights
            keep = np.ones(n)
            for name in ("robust_z", "iqr", "ewma", "cusum"):
                keep *= 1.0 - w.get(name, 0.0) * outs[name].score
            score = 1.0 - keep
            if self.p.seasonal_gate and w.get("seasonal", 0.0) > 0:
                seas = outs["seasonal"].score
                score = np.where((kind > 0) & (record == 0), np.minimum(score, seas), score)
                score = np.where((kind > 0) & (seas >= self.p.seasonal_alone), np.maximum(score, seas), score)
        score = np.clip(score, 0.0, 1.0)
        raw = score
        novelty = self.context.score(robust.z, valid)
        if self.p.context is not None and not self.p.only:
            exempt = (record != 0) | ((kind > 0) & (outs["seasonal"].score >= self.p.context_exempt))
            score = np.where(exempt, score, np.minimum(score, novelty))
        if self.p.refractory:
            score = self._refractory(score)
        seasonal = outs.get("seasonal")
        band = outs.get("robust_z") or next(iter(outs.values()))
        use_seasonal = (kind > 0) if seasonal is not None else np.zeros(n, dtype=bool)
        expected = np.where(use_seasonal, seasonal.expected, band.expected) if seasonal is not None else band.expected
        lower = np.where(use_seasonal, seasonal.lower, band.lower) if seasonal is not None else band.lower
        upper = np.where(use_seasonal, seasonal.upper, band.upper) if seasonal is not None else band.upper
        self.last_t = int(t_ms[-1]) if n else self.last_t
        self.seen += n
        return Scored(t_ms, x, score, raw, outs, kind, since, stats.count, expected, lower, upper, record)

    def _records(self, x: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Per point +1 if it is above every value before it (in the series' life), -1 if below
        every one, else 0 (and 0 while the detectors are still learning); then learn them."""
        if not self.p.records or not len(x):
            return np.zeros(len(x), dtype=np.int8)
        if self.hi < self.lo:  # nothing seen yet: the first value is no record
            self.hi = self.lo = float(x[0])
        before_hi = np.maximum.accumulate(np.concatenate([[self.hi], x[:-1]]))
        before_lo = np.minimum.accumulate(np.concatenate([[self.lo], x[:-1]]))
        margin = self.p.record_margin * (before_hi - before_lo)
        record = (x > before_hi + margin).view(np.int8) - (x < before_lo - margin).view(np.int8)
        record[~valid] = 0
        self.hi, self.lo = max(self.hi, float(x.max())), min(self.lo, float(x.min()))
        return record

    def score_point(self, t: int, x: float) -> Scored:
        """`score` of one point given as plain numbers (the hub's streaming path)."""
        if not math.isfinite(x):
            return self.score(np.array([t], dtype=np.int64), np.array([x]))
        return self._score_one(t, x)

    def _score_one(self, t: int, x: float) -> Scored:
        """The same as `score` for one point, with scalar arithmetic: in the hub each series
        gets one new point per evaluation, and NumPy's per-call overhead on arrays of one
        element would cost ten times the arithmetic."""
        p = self.p
        med, mad, q1, q3, count = self.window.stats_one(x)
        valid = count >= p.min_points
        rz = self.robust.score_one(x, med, mad, q1, q3)
        iq = self.iqr.score_one(x, med, q1, q3)
        ew = self.ewma.score_one(x)
        cs, csum, since = self.cusum.score_one(t, rz[1], valid)
        se, kind = self.seasonal.score_one(t, x)
        record = 0
        if p.records:
            if self.hi < self.lo:
                self.hi = self.lo = x
            if valid:
                margin = p.record_margin * (self.hi - self.lo)
                record = 1 if x > self.hi + margin else -1 if x < self.lo - margin else 0
            self.hi, self.lo = max(self.hi, x), min(self.lo, x)
        nan = float("nan")
        parts = {"robust_z": rz, "iqr": iq, "ewma": ew, "cusum": (cs, csum, nan, nan, nan), "seasonal": se}
        scores = {k: (v[0] if valid else 0.0) for k, v in parts.items()}
        if p.only:
            score = scores[p.only]
            parts = {p.only: parts[p.only]}
        else:
            w = p.weights
            keep = 1.0
            for name in ("robust_z", "iqr", "ewma", "cusum"):
                keep *= 1.0 - w.get(name, 0.0) * scores[name]
            score = 1.0 - keep
            if p.seasonal_gate and w.get("seasonal", 0.0) > 0 and kind > 0:
                seas = scores["seasonal"]
                if not record:
                    score = min(score, seas)
                if seas >= p.seasonal_alone:
                    score = max(score, seas)
        score = min(max(score, 0.0), 1.0)
        raw = score
        novelty = self.context.score_one(rz[1], valid)
        exempt = record != 0 or (kind > 0 and scores["seasonal"] >= p.context_exempt)
        if p.context is not None and not p.only and not exempt:
            score = min(score, novelty)
        if p.refractory:
            if self.cooldown:
                score = 0.0
                self.cooldown -= 1
            elif score >= p.onset_level:
                self.cooldown = p.refractory
        band = parts["seasonal"] if (kind > 0 and "seasonal" in parts) else parts.get("robust_z") or \
            next(iter(parts.values()))
        self.last_t = t
        self.seen += 1
        # every number in one array, handed out as one-element views (array creation dominates)
        names = list(parts)
        flat = [score, raw, x, band[2], band[3], band[4]]
        for k in names:
            v = parts[k]
            flat += (scores[k], v[1], v[2], v[3], v[4])
        arr = np.array(flat)
        outs = _PointOutputs(arr, names)
        ints = np.array([t, kind, since, min(count, p.window), record], dtype=np.int64)
        return Scored(ints[0:1], arr[2:3], arr[0:1], arr[1:2], outs, ints[1:2], ints[2:3], ints[3:4],
                      arr[3:4], arr[4:5], arr[5:6], ints[4:5])

    def _score_with_gaps(self, t_ms: np.ndarray, x: np.ndarray, finite: np.ndarray) -> Scored:
        n = len(x)
        good = np.flatnonzero(finite)
        inner = self.score(t_ms[good], x[good]) if len(good) else None
        score = np.zeros(n)
        outs = {}
        names = (self.p.only,) if self.p.only else DETECTORS
        for name in names:
            out = DetectorOutput.empty(n)
            if inner is not None:
                src = inner.detectors[name]
                for f in ("score", "z", "expected", "lower", "upper"):
                    getattr(out, f)[good] = getattr(src, f)
            outs[name] = out
        res = Scored(t_ms, x, score, score.copy(), outs, np.zeros(n, dtype=np.int8), np.zeros(n, dtype=np.int64),
                     np.zeros(n, dtype=np.int64), np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan))
        if inner is not None:
            for f in ("score", "raw", "seasonal_kind", "cusum_since", "window_count", "expected", "lower", "upper"):
                getattr(res, f)[good] = getattr(inner, f)
            if inner.record is not None:
                res.record = np.zeros(n, dtype=np.int8)
                res.record[good] = inner.record
        return res

    def _refractory(self, score: np.ndarray) -> np.ndarray:
        """Damp the points after an onset. Sequential by nature, but onsets are rare: only
        points above the level are visited."""
        out = score.copy()
        level, span = self.p.onset_level, self.p.refractory
        cooldown = self.cooldown
        pos = 0
        n = len(score)
        if cooldown:
            stop = min(n, cooldown)
            out[:stop] *= 0.0
            cooldown -= stop
            pos = stop
        while pos < n:
            above = np.flatnonzero(out[pos:] >= level)
            if not len(above):
                break
            onset = pos + int(above[0])
            stop = min(n, onset + 1 + span)
            out[onset + 1: stop] = 0.0
            cooldown = onset + 1 + span - stop
            pos = stop
        self.cooldown = cooldown
        return out

    # --- state ---------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The learned state, compact (about 3 KB: float32 profiles and window)."""
        mean, var, count = self.ewma.state()
        up, down, up_since, down_since = self.cusum.state()
        week, day, hour, acc = self.seasonal.state()
        win = self.window.state()
        head = struct.pack(_HEAD, _MAGIC, mean, var, count, up, down, up_since, down_since,
                           hour, *acc, self.cooldown, self.last_t, self.seen, len(win))
        counts, prev, counted = self.context.state()
        return (head + struct.pack(_EXTRA, self.hi, self.lo, prev, counted) + counts + win.astype("<f4").tobytes()
                + week.astype("<f4").tobytes() + day.astype("<f4").tobytes())

    @classmethod
    def from_bytes(cls, data: bytes, params: EnsembleParams = EnsembleParams()) -> Ensemble:
        size = struct.calcsize(_HEAD)
        fields = struct.unpack(_HEAD, data[:size])
        if fields[0] not in (_MAGIC, b"PAE1"):
            raise ValueError("not an ensemble state")
        extremes = None
        if fields[0] == _MAGIC:
            hi, lo, prev, counted = struct.unpack(_EXTRA, data[size:size + struct.calcsize(_EXTRA)])
            extremes = hi, lo
            size += struct.calcsize(_EXTRA)
            nctx = TransitionNovelty.nbytes()
            context = (data[size:size + nctx], prev, counted)
            size += nctx
        (_, mean, var, count, up, down, up_since, down_since, hour, a0, a1, a2,
         cooldown, last_t, seen, nwin) = fields
        ens = cls(params)
        ens.ewma.load(mean, var, count)
        ens.cusum.load(up, down, up_since, down_since)
        off = size
        win = np.frombuffer(data, "<f4", nwin, off)
        off += 4 * nwin
        week = np.frombuffer(data, "<f4", 3 * 168, off)
        off += 4 * 3 * 168
        day = np.frombuffer(data, "<f4", 3 * 24, off)
        ens.window.load(win)
        if extremes is not None:
            ens.hi, ens.lo = extremes
            ens.context.load(*context)
        elif nwin:  # a state saved before the extremes were kept: the window's are the best guess
            ens.hi, ens.lo = float(win.max()), float(win.min())
        ens.seasonal.load(week, day, hour, [a0, a1, a2])
        ens.cooldown, ens.last_t, ens.seen = int(cooldown), int(last_t), int(seen)
        return ens
