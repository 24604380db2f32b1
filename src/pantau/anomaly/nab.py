"""NAB scoring, written from the NAB paper (Lavin & Ahmad 2015) and the corpus's README.

Per file: the first min(floor(0.15 * rows), 750) rows are a probation period and never count.
A detection is a row whose score reaches the threshold. Inside a labelled window only the first
detection counts, rewarded by the scaled sigmoid of its position (about +1 at the window's
start, 0 at its end); a window without one costs the FN weight. A detection outside every
window costs the FP weight times the sigmoid of its distance past the previous window's end
(-1 before the first window). One threshold per profile is chosen for the whole corpus, the
one maximising the total; the total is normalised so that the null detector (never detects)
scores 0 and the perfect one (detects each window at its first scorable row) 100.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

PROFILES = {
    "standard": (1.0, 0.11, 1.0),
    "reward_low_FP_rate": (1.0, 0.22, 1.0),
    "reward_low_FN_rate": (1.0, 0.11, 2.0),
}


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return np.where(y > 3.0, -1.0, 2.0 / (1.0 + np.exp(np.minimum(5.0 * y, 700.0))) - 1.0)


@dataclass
class LabelledFile:
    """One corpus file, its rows, and where each row stands with respect to the windows."""

    name: str  # relative to data/, e.g. realKnownCause/nyc_taxi.csv
    timestamps: list[str]
    values: np.ndarray
    weight: np.ndarray  # unweighted sigmoid score of a detection at each row
    window: np.ndarray  # window number of each row, -1 outside
    n_windows: int
    probation: int

    @property
    def category(self) -> str:
        return self.name.split("/")[0]


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.strip())


def load_file(data_dir: Path, name: str, windows: list[list[str]]) -> LabelledFile:
    with open(data_dir / name, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    stamps = [r[0] for r in rows]
    values = np.asarray([float(r[1]) for r in rows])
    times = [parse_time(s) for s in stamps]
    n = len(rows)
    weight = np.full(n, -1.0)
    window = np.full(n, -1, dtype=np.int64)
    limits = [(parse_time(a), parse_time(b)) for a, b in windows]
    # the sweep as NAB walks it: rows in file order, a window entered when a row reaches its start
    cur = -1
    right = width = None
    prev_right = prev_width = None
    pending = list(enumerate(limits))
    for i, t in enumerate(times):
        if pending and t >= pending[0][1][0]:
            cur, (_start, end) = pending.pop(0)
            right = i
            while right + 1 < n and times[right + 1] <= end:
                right += 1
            width = right - i + 1
            in_end = end
        if cur >= 0 and right is not None and t <= in_end and i <= right:
            weight[i] = scaled_sigmoid(-(right - i + 1) / width)
            window[i] = cur
        else:
            if right is not None and i > right:
                prev_right, prev_width = right, width
            if prev_right is None:
                weight[i] = -1.0
            else:
                weight[i] = scaled_sigmoid(abs(i - prev_right) / max(prev_width - 1, 1))
    probation = min(int(0.15 * n), 750)
    return LabelledFile(name, stamps, values, weight, window, len(limits), probation)


def load_corpus(root: Path) -> list[LabelledFile]:
    labels = json.loads((root / "labels" / "combined_windows.json").read_text())
    files = sorted(p.relative_to(root / "data").as_posix() for p in (root / "data").rglob("*.csv"))
    return [load_file(root / "data", f, labels.get(f, [])) for f in files]


def _file_curve(f: LabelledFile, scores: np.ndarray, thresholds: np.ndarray,
                tp_w: float, fp_w: float, fn_w: float) -> np.ndarray:
    """The file's raw score at each threshold."""
    scorable = np.arange(len(scores)) >= f.probation
    total = np.zeros(len(thresholds))
    outside = scorable & (f.window < 0)
    s_out = scores[outside]
    order = np.argsort(-s_out)
    cum = np.concatenate([[0.0], np.cumsum(f.weight[outside][order])])
    detected = len(s_out) - np.searchsorted(np.sort(s_out), thresholds, side="left")
    total += fp_w * cum[detected]
    for w in range(f.n_windows):
        rows = np.flatnonzero(scorable & (f.window == w))
        if not len(rows):
            total -= fn_w
            continue
        prefix_max = np.maximum.accumulate(scores[rows])
        first = np.searchsorted(prefix_max, thresholds, side="left")
        hit = first < len(rows)
        total += np.where(hit, tp_w * f.weight[rows[np.minimum(first, len(rows) - 1)]], -fn_w)
    return total


def _bounds(f: LabelledFile, tp_w: float, fn_w: float) -> tuple[float, float]:
    """(null, perfect) raw scores of one file."""
    null = -fn_w * f.n_windows
    perfect = 0.0
    for w in range(f.n_windows):
        rows = np.flatnonzero((f.window == w) & (np.arange(len(f.window)) >= f.probation))
        perfect += tp_w * f.weight[rows[0]] if len(rows) else -fn_w
    return null, perfect


@dataclass
class ProfileResult:
    profile: str
    score: float  # normalised: null 0, perfect 100
    threshold: float
    by_category: dict[str, float]
    tp: int
    fp: int
    fn: int
    fp_by_category: dict[str, int]


def score_corpus(corpus: list[LabelledFile], scores: dict[str, np.ndarray]) -> list[ProfileResult]:
    candidates = np.unique(np.concatenate([np.round(scores[f.name], 6) for f in corpus]))
    candidates = candidates[candidates > 0]
    if len(candidates) > 20_000:
        candidates = np.unique(np.quantile(candidates, np.linspace(0, 1, 20_000)))
    thresholds = np.concatenate([candidates, [np.inf]])
    results = []
    for profile, (tp_w, fp_w, fn_w) in PROFILES.items():
        curves = {f.name: _file_curve(f, scores[f.name], thresholds, tp_w, fp_w, fn_w) for f in corpus}
        total = sum(curves.values())
        best = int(np.argmax(total))
        bounds = {f.name: _bounds(f, tp_w, fn_w) for f in corpus}
        null = sum(b[0] for b in bounds.values())
        perfect = sum(b[1] for b in bounds.values())
        cats: dict[str, list[float]] = {}
        for f in corpus:
            c = cats.setdefault(f.category, [0.0, 0.0, 0.0])
            c[0] += curves[f.name][best]
            c[1] += bounds[f.name][0]
            c[2] += bounds[f.name][1]
        by_cat = {k: (100 * (v[0] - v[1]) / (v[2] - v[1]) if v[2] != v[1] else float("nan"))
                  for k, v in sorted(cats.items())}
        thr = float(thresholds[best])
        tp = fp = fn = 0
        fp_cat: dict[str, int] = {}
        for f in corpus:
            s = scores[f.name]
            scorable = np.arange(len(s)) >= f.probation
            det = scorable & (s >= thr)
            n_fp = int((det & (f.window < 0)).sum())
            fp += n_fp
            fp_cat[f.category] = fp_cat.get(f.category, 0) + n_fp
            for w in range(f.n_windows):
                if (det & (f.window == w)).any():
                    tp += 1
                else:
                    fn += 1
        results.append(ProfileResult(profile, 100 * (total[best] - null) / (perfect - null), thr, by_cat, tp, fp, fn,
                                     fp_cat))
    return results
