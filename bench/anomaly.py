"""Anomaly detection benchmark: NAB score, batch and streaming throughput, state size.

    python bench/anomaly.py                       # everything (NAB corpus in ../shared/datasets/nab)
    python bench/anomaly.py --nab PATH --series 20000
    python bench/anomaly.py --nab-only --repeat 1      # the NAB score alone
    python bench/anomaly.py --only engine --engine-series 5000 --repeat 7   # the engine tick alone

1. **NAB.** Every file of the corpus is scored by the hub's default ensemble (the same code
   and settings as `pantau anomaly score`), then scored as NAB scores (see
   `pantau.anomaly.nab`): per profile and per category. Baseline, same run: a rolling z-score
   (mean and standard deviation of the previous 256 points, |z| mapped to [0, 1]).
2. **Batch throughput**: points per second over the whole corpus, one core, against the obvious
   NumPy robust z-score: median and MAD of each point's previous 256 values with `np.median`
   over a sliding-window view (one detector of the five, written the usual way).
3. **Streaming throughput**: `--series` series that have learned 300 points each get one new
   point each, as the hub does at every evaluation: series per second, against the obvious
   streaming robust z-score (per series, `np.median` and MAD of its last 256 values for the new
   point); and the whole engine tick in a store (PromQL range query for the new step, scoring,
   score series written back, state kept) on `--engine-series` series, against the scoring
   alone of the same series at the same points (copies of their models, same run): the ratio
   is the share of the tick that is the detectors' arithmetic.
4. **State**: the serialised state of a series (what the hub saves) in bytes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from pantau.anomaly.config import AnomalyConfig, DetectorsConfig, WatchConfig  # noqa: E402
from pantau.anomaly.ensemble import Ensemble  # noqa: E402
from pantau.anomaly.nab import load_corpus, score_corpus  # noqa: E402


def rolling_z(x: np.ndarray, w: int = 256) -> np.ndarray:
    """The baseline detector: z of each point against the previous w points, squashed to [0, 1]."""
    c1 = np.concatenate([[0.0], np.cumsum(x)])
    c2 = np.concatenate([[0.0], np.cumsum(x * x)])
    idx = np.arange(len(x))
    lo = np.maximum(0, idx - w)
    k = idx - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (c1[idx] - c1[lo]) / k
        var = (c2[idx] - c2[lo]) / k - mean * mean
        z = np.abs(x - mean) / np.sqrt(np.maximum(var, 1e-12))
    z = np.where(k >= 24, z, 0.0)
    return 1.0 - np.exp(-np.nan_to_num(z) / 4.0)


def naive_robust_z(x: np.ndarray, w: int = 256) -> np.ndarray:
    """The throughput baseline: a rolling median/MAD z-score written the usual NumPy way."""
    from numpy.lib.stride_tricks import sliding_window_view

    out = np.zeros(len(x))
    if len(x) > w:
        win = sliding_window_view(x[:-1], w)
        med = np.median(win, axis=1)
        mad = np.median(np.abs(win - med[:, None]), axis=1)
        out[w:] = np.abs(x[w:] - med) / np.maximum(mad, 1e-9)
    return out


def millis(stamps: list[str]) -> np.ndarray:
    return np.array([int(datetime.fromisoformat(s).replace(tzinfo=UTC).timestamp() * 1000) for s in stamps],
                    dtype=np.int64)


def nab(path: Path, repeat: int) -> None:
    corpus = load_corpus(path)
    params = DetectorsConfig().params()
    times = {f.name: millis(f.timestamps) for f in corpus}
    points = sum(len(f.values) for f in corpus)
    ours: dict[str, np.ndarray] = {}
    base: dict[str, np.ndarray] = {}
    ens_s, base_s, naive_s = [], [], []
    sizes = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for f in corpus:
            model = Ensemble(params)
            ours[f.name] = model.score(times[f.name], f.values).score
            sizes.append(len(model.to_bytes()))
        ens_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for f in corpus:
            base[f.name] = rolling_z(f.values)
        base_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for f in corpus:
            naive_robust_z(f.values)
        naive_s.append(time.perf_counter() - t0)
    print(f"NAB corpus: {len(corpus)} files, {points:,} points, {sum(f.n_windows for f in corpus)} windows\n")
    for label, scores in (("pantau ensemble", ours), ("rolling z-score (baseline)", base)):
        print(f"{label}:")
        for r in score_corpus(corpus, scores):
            cats = "  ".join(f"{k} {v:5.1f}" if v == v else f"{k} (no windows) {r.fp_by_category.get(k, 0)} FP"
                             for k, v in r.by_category.items())
            print(f"  {r.profile:19s} {r.score:6.1f}   threshold {r.threshold:.4f}  TP {r.tp} FP {r.fp} FN {r.fn}"
                  f"   | {cats}")
    e, b = statistics.median(ens_s), statistics.median(naive_s)
    print(f"\nbatch throughput (median of {repeat}): ensemble {points / e:,.0f} points/s; usual NumPy rolling "
          f"median/MAD z-score {points / b:,.0f} points/s; ratio {b / e:.2f}x (target >= 200,000 points/s per core)")
    print(f"state per series: {max(sizes):,} bytes serialised (target <= 4,096)")


def streaming(n_series: int, repeat: int) -> None:
    params = DetectorsConfig().params()
    rng = np.random.default_rng(3)
    t_hist = np.arange(300, dtype=np.int64) * 60_000
    models = []
    for _ in range(n_series):
        m = Ensemble(params)
        m.score(t_hist, rng.normal(100, 5, 300))
        models.append(m)
    windows = [rng.normal(100, 5, 256) for _ in range(n_series)]
    rates, base_rates = [], []
    for r in range(repeat):
        t = (300 + 2 * r) * 60_000
        xs = rng.normal(100, 5, n_series)
        t0 = time.perf_counter()
        for m, x in zip(models, xs.tolist(), strict=True):  # what the engine does
            m.score_point(t, x)
        rates.append(n_series / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for win, x in zip(windows, xs.tolist(), strict=True):
            med = np.median(win)
            mad = np.median(np.abs(win - med))
            _ = abs(x - med) / max(mad, 1e-9)
            win[:-1] = win[1:]
            win[-1] = x
        base_rates.append(n_series / (time.perf_counter() - t0))
    ours, base = statistics.median(rates), statistics.median(base_rates)
    print(f"\nstreaming, {n_series:,} series, one new point each (median of {repeat}): ensemble {ours:,.0f} series/s, "
          f"usual per-series median/MAD z-score {base:,.0f} series/s, ratio {ours / base:.2f}x "
          f"(target >= 20,000 series/s)")


def engine(n_series: int, repeat: int) -> None:
    from pantau.anomaly.engine import AnomalyEngine
    from pantau.model import SampleBatch, make_labels, series_key
    from pantau.store.sqlite import SQLiteOptions, SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(SQLiteOptions(data_dir=Path(tmp)))
        store.start()
        try:
            step = 15_000
            now = int(time.time() * 1000) // step * step
            rng = np.random.default_rng(5)
            labels = [make_labels({"__name__": "bench_latency_seconds", "job": f"svc{i % 50}", "instance": f"i{i}"})
                      for i in range(n_series)]
            hist = 120
            for k in range(0, hist, 20):
                batch = SampleBatch()
                for j in range(k, min(hist, k + 20)):
                    t = now - (hist + repeat - j) * step
                    vals = rng.normal(0.1, 0.005, n_series)
                    for lab, v in zip(labels, vals.tolist(), strict=True):
                        batch.append(lab, t, v)
                store.write(batch)
            cfg = AnomalyConfig(default_watches=False, step=f"{step // 1000}s", warmup="1h", checkpoint_interval="1h",
                                watches=[WatchConfig(name="latency", expr="bench_latency_seconds", unit="s")])
            eng = AnomalyEngine(store, None, cfg)
            t_first = now - repeat * step
            t0 = time.perf_counter()
            eng.evaluate(t_first / 1000)
            warm = time.perf_counter() - t0
            # the baseline: the same series' models, copied after the warm-up, scoring the same points
            copies = [Ensemble.from_bytes(eng.series[f"latency|{series_key(lab)}"].model.to_bytes(), eng.params)
                      for lab in labels]
            rates, base_rates = [], []
            for r in range(1, repeat + 1):
                t = now - (repeat - r) * step
                xs = rng.normal(0.1, 0.005, n_series).tolist()
                batch = SampleBatch()
                for lab, v in zip(labels, xs, strict=True):
                    batch.append(lab, t, v)
                store.write(batch)
                t0 = time.perf_counter()
                stats = eng.evaluate(t / 1000)
                rates.append(stats.series / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                for m, x in zip(copies, xs, strict=True):
                    m.score_point(t, x)
                base_rates.append(n_series / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            saved = eng.checkpoint()
            ck = time.perf_counter() - t0
            blob = max(len(v) for v in store.list_state("anomaly").values())
        finally:
            store.close()
    # the first live tick also creates the score series in the store's index: reported apart
    first, rates, base_rates = rates[0], rates[1:] or rates, base_rates[1:] or base_rates
    ours, base = statistics.median(rates), statistics.median(base_rates)
    print(f"\nengine tick in a store, {n_series:,} series (median of {len(rates)} ticks): {ours:,.0f} series/s, "
          f"min {min(rates):,.0f} (PromQL range for the new step + scoring + 4 score series written); "
          f"scoring alone, same series and points: {base:,.0f} series/s; ratio {ours / base:.2f}x "
          f"(target >= 20,000 series/s)")
    print(f"  ticks: {', '.join(f'{x:,.0f}' for x in rates)}; first live tick (creates the score series): "
          f"{first:,.0f} series/s; warm-up from {hist} stored points each: {warm:.2f} s; checkpoint of "
          f"{saved:,} series: {ck:.2f} s, {blob:,} bytes per series")
    # with the default intervals (evaluation 60 s, checkpoint 600 s) one evaluation in ten also
    # saves every series' state; with a checkpoint after every tick, for comparison
    defaults = AnomalyConfig()
    every = max(1, round(defaults.checkpoint_interval / defaults.evaluation_interval))
    print(f"  with the checkpoint's cost spread over the ticks (default intervals: one in {every}): "
          f"{n_series / (n_series / ours + ck / every):,.0f} series/s; "
          f"with a checkpoint after every tick: {n_series / (n_series / ours + ck):,.0f} series/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nab", type=Path, default=ROOT.parent / "shared" / "datasets" / "nab")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--series", type=int, default=20_000)
    ap.add_argument("--engine-series", type=int, default=5_000)
    ap.add_argument("--skip-nab", action="store_true")
    ap.add_argument("--nab-only", action="store_true", help="only the NAB score and batch throughput (seconds)")
    ap.add_argument("--only", action="append", choices=("nab", "streaming", "engine"),
                    help="run only these parts (repeatable); default: all")
    args = ap.parse_args()
    parts = set(args.only or ("nab", "streaming", "engine"))
    if args.nab_only:
        parts = {"nab"}
    if args.skip_nab:
        parts.discard("nab")
    if "nab" in parts:
        nab(args.nab, args.repeat)
    if "streaming" in parts:
        streaming(args.series, args.repeat)
    if "engine" in parts:
        engine(args.engine_series, args.repeat)


if __name__ == "__main__":
    main()
