"""PromQL functions, computed for all evaluation steps of a series at once.

Range functions see each step's window [t - range, t] of a series' samples as index bounds
[lo, hi); running sums over the series then answer every window in one NumPy expression.
Functions whose exact float behaviour depends on summation order (stddev, quantile) run
per window, as Prometheus does, to match it to the last bit that matters.
"""

from __future__ import annotations

import calendar
import math
import re
from datetime import UTC, datetime

import numpy as np

from pantau.model import METRIC_NAME
from pantau.query.promql.values import (
    ExecutionError,
    Matrix,
    PromQLError,
    RangeSeries,
    Scalar,
    String,
    Unsupported,
    Vector,
    check_duplicates,
    drop_name,
    label_value,
    with_label,
)

# --- helpers -----------------------------------------------------------------------------------


def _vector_from_rows(labels, values, present) -> Vector:
    if not labels:
        steps = present.shape[1] if present.ndim == 2 else 0
        return Vector([], np.zeros((0, steps)), np.zeros((0, steps), dtype=bool))
    return Vector(labels, np.asarray(values, dtype=float), np.asarray(present, dtype=bool))


def check_result(vec: Vector) -> None:
    check_duplicates(vec)


def _scalar_arg(engine, node, ctx, name: str) -> np.ndarray:
    value = engine.eval(node, ctx)
    if not isinstance(value, Scalar):
        raise PromQLError(f"expected scalar argument in call to {name}")
    return value.values


def _vector_arg(engine, node, ctx, name: str) -> Vector:
    value = engine.eval(node, ctx)
    if not isinstance(value, Vector):
        raise PromQLError(f"expected instant vector argument in call to {name}")
    return value


def _matrix_arg(engine, node, ctx, name: str) -> Matrix:
    value = engine.eval(node, ctx)
    if not isinstance(value, Matrix):
        raise PromQLError(f"expected range vector argument in call to {name}")
    return value


# --- range-vector functions ----------------------------------------------------------------------


def _over_time(matrix: Matrix, compute, keep_name: bool = False) -> Vector:
    """Apply `compute(series, lo, hi) -> (values, present)` to each series' windows."""
    labels, rows, pres = [], [], []
    for s in matrix.series:
        lo, hi = matrix.windows(s)
        values, present = compute(s, lo, hi)
        if present.any():
            labels.append(s.labels if keep_name else drop_name(s.labels))
            rows.append(values)
            pres.append(present)
    steps = len(matrix.eval_times)
    if not labels:
        return Vector.empty(steps)
    return Vector(labels, np.vstack(rows), np.vstack(pres))


def _prefix(values: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values) + 1)
    np.cumsum(values, out=out[1:])
    return out


def _extrapolated_rate(matrix: Matrix, is_counter: bool, is_rate: bool) -> Vector:
    """rate(), increase(), delta(): Prometheus's extrapolatedRate, for every window at once."""
    range_s = matrix.range_ms / 1000

    def compute(s: RangeSeries, lo: np.ndarray, hi: np.ndarray):
        n = hi - lo
        present = n >= 2
        if not present.any():
            return np.zeros(len(lo)), present
        t, v = s.timestamps, s.values
        first = np.where(present, lo, 0)
        last = np.where(present, hi - 1, 0)
        result = v[last] - v[first]
        if is_counter:
            drops = np.zeros(len(v))
            if len(v) > 1:
                drops[1:] = np.where(v[1:] < v[:-1], v[:-1], 0.0)
            corr = np.cumsum(drops)
            result = result + corr[last] - corr[first]
        range_start = matrix.eval_times - matrix.range_ms
        range_end = matrix.eval_times
        t_first, t_last = t[first], t[last]
        to_start = (t_first - range_start) / 1000
        to_end = (range_end - t_last) / 1000
        sampled = (t_last - t_first) / 1000
        with np.errstate(divide="ignore", invalid="ignore"):
            average = sampled / np.maximum(n - 1, 1)
            if is_counter:
                with_slope = (result > 0) & (v[first] >= 0)
                to_zero = sampled * (v[first] / np.where(result == 0, 1, result))
                to_start = np.where(with_slope & (to_zero < to_start), to_zero, to_start)
            threshold = average * 1.1
            interval = sampled.copy()
            interval += np.where(to_start < threshold, to_start, average / 2)
            interval += np.where(to_end < threshold, to_end, average / 2)
            result = result * (interval / sampled)
            if is_rate:
                result = result / range_s
        return result, present

    return _over_time(matrix, compute)


def _instant_rate(matrix: Matrix, is_rate: bool) -> Vector:
    """irate(), idelta(): from the last two samples of each window."""

    def compute(s: RangeSeries, lo, hi):
        present = hi - lo >= 2
        last = np.where(present, hi - 1, 1)
        prev = last - 1
        v, t = s.values, s.timestamps
        result = v[last] - v[prev]
        if is_rate:
            result = np.where(v[last] < v[prev], v[last], result)  # counter reset
            with np.errstate(divide="ignore", invalid="ignore"):
                result = result / ((t[last] - t[prev]) / 1000)
        return result, present

    return _over_time(matrix, compute)


def _windowed(matrix: Matrix, reduce, keep_name: bool = False, min_samples: int = 1) -> Vector:
    """A per-window Python reduction for functions that must follow Prometheus's arithmetic."""

    def compute(s: RangeSeries, lo, hi):
        out = np.zeros(len(lo))
        present = hi - lo >= min_samples
        for i in np.flatnonzero(present).tolist():
            out[i] = reduce(s.timestamps[lo[i]:hi[i]], s.values[lo[i]:hi[i]], i)
        return out, present

    return _over_time(matrix, compute, keep_name)


def _sum_windows(matrix: Matrix, kind: str) -> Vector:
    def compute(s: RangeSeries, lo, hi):
        n = hi - lo
        present = n > 0
        v = s.values
        if kind == "count":
            return n.astype(float), present
        if not np.isfinite(v).all():
            out = np.zeros(len(lo))
            for i in np.flatnonzero(present).tolist():
                window = v[lo[i]:hi[i]]
                out[i] = window.sum() if kind == "sum" else _mean(window)
            return out, present
        p = _prefix(v)
        total = p[hi] - p[lo]
        if kind == "sum":
            return total, present
        with np.errstate(divide="ignore", invalid="ignore"):
            return total / np.maximum(n, 1), present

    return _over_time(matrix, compute)


def _mean(window: np.ndarray) -> float:
    """avg_over_time as Prometheus computes it: an incremental mean that survives overflow."""
    mean = 0.0
    for count, x in enumerate(window.tolist(), start=1):
        if math.isinf(mean):
            if math.isinf(x) and (mean > 0) == (x > 0):
                continue
            if not math.isinf(x) and not math.isnan(x):
                continue
        mean += x / count - mean / count
    return mean


def range_reduce(v: np.ndarray, lo: np.ndarray, hi: np.ndarray, reduce) -> np.ndarray:
    """`reduce` (np.fmin or np.fmax) over every window v[lo:hi] at once with a sparse table
    (doubling spans): each window is covered by two precomputed power-of-two spans. fmin/fmax
    ignore NaN unless a window holds only NaN, as Prometheus's loop does. Empty windows: 0."""
    length = hi - lo
    present = length > 0
    out = np.zeros(len(lo))
    if not present.any():
        return out
    levels = [v]
    span = 1
    longest = int(length.max())
    while span * 2 <= longest:
        prev = levels[-1]
        levels.append(reduce(prev[:-span], prev[span:]))
        span *= 2
    j = np.zeros(len(lo), dtype=np.int64)
    j[present] = np.floor(np.log2(length[present])).astype(np.int64)
    for level in np.unique(j[present]).tolist():
        sel = present & (j == level)
        table = levels[level]
        out[sel] = reduce(table[lo[sel]], table[hi[sel] - (1 << level)])
    return out


def _minmax_windows(matrix: Matrix, reduce) -> Vector:
    return _over_time(matrix, lambda s, lo, hi: (range_reduce(s.values, lo, hi, reduce), hi > lo))


def _variance(values: list[float]) -> float:
    count, mean, aux = 0.0, 0.0, 0.0
    for x in values:
        count += 1
        delta = x - mean
        mean += delta / count
        aux += delta * (x - mean)
    return aux / count


def quantile(q: float, values: np.ndarray) -> float:
    """Prometheus's quantile: linear interpolation between closest ranks."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if not len(values):
        return math.nan
    ordered = np.sort(values)
    nan = np.isnan(ordered)
    if nan.any():  # Go's sort.Float64s puts NaN first; numpy puts it last
        ordered = np.concatenate((ordered[nan], ordered[~nan]))
    rank = q * (len(ordered) - 1)
    low = max(0, math.floor(rank))
    high = min(len(ordered) - 1, low + 1)
    weight = rank - math.floor(rank)
    return float(ordered[low] * (1 - weight) + ordered[high] * weight)


def _regression(times: np.ndarray, values: np.ndarray, intercept_time: int) -> tuple[float, float]:
    """Prometheus's linearRegression (Kahan-free: within 1e-12 of it on real data)."""
    if (values == values[0]).all():
        if math.isinf(values[0]):
            return math.nan, math.nan
        return 0.0, float(values[0])
    x = (times - intercept_time) / 1000.0
    n = len(values)
    sum_x, sum_y = x.sum(), values.sum()
    cov = (x * values).sum() - sum_x * sum_y / n
    var = (x * x).sum() - sum_x * sum_x / n
    slope = cov / var if var != 0 else math.nan
    return slope, sum_y / n - slope * sum_x / n


def _holt_winters(values: list[float], sf: float, tf: float) -> float:
    """Prometheus's double exponential smoothing (holt_winters in 2.x)."""
    s0, s1, b = 0.0, values[0], values[1] - values[0]
    for i in range(1, len(values)):
        x = sf * values[i]
        if i > 1:
            b = tf * (s1 - s0) + (1 - tf) * b
        y = (1 - sf) * (s1 + b)
        s0, s1 = s1, x + y
    return s1


def _changes(matrix: Matrix, resets: bool) -> Vector:
    def compute(s: RangeSeries, lo, hi):
        v = s.values
        flags = np.zeros(len(v))
        if len(v) > 1:
            if resets:
                flags[1:] = v[1:] < v[:-1]
            else:
                same = (v[1:] == v[:-1]) | (np.isnan(v[1:]) & np.isnan(v[:-1]))
                flags[1:] = ~same
        p = _prefix(flags)
        present = hi - lo > 0
        count = p[np.maximum(hi, 1)] - p[np.minimum(lo + 1, len(v))]
        return np.where(present, np.maximum(count, 0), 0.0), present

    return _over_time(matrix, compute)


# --- instant-vector functions -----------------------------------------------------------------


def _map(vec: Vector, fn, keep_name: bool = False) -> Vector:
    with np.errstate(all="ignore"):
        values = fn(vec.values)
    labels = vec.labels if keep_name else [drop_name(lab) for lab in vec.labels]
    return Vector(labels, values, vec.present.copy())


def _round(values: np.ndarray, to_nearest: np.ndarray) -> np.ndarray:
    """Go's math.Floor(v*inverse + 0.5) / inverse, as Prometheus rounds."""
    inverse = 1.0 / to_nearest
    return np.floor(values * inverse + 0.5) / inverse


def _time_part(vec: Vector | None, steps: np.ndarray, part: str, n: int):
    if vec is None:
        values = (steps / 1000.0)[None, :]
        present = np.ones((1, n), dtype=bool)
        labels = [()]
    else:
        values, present, labels = vec.values, vec.present, [drop_name(lab) for lab in vec.labels]
    out = np.zeros(values.shape)
    for idx in zip(*np.nonzero(present), strict=True):
        v = values[idx]
        if math.isnan(v) or math.isinf(v):
            out[idx] = math.nan
            continue
        dt = datetime.fromtimestamp(int(v), UTC)
        out[idx] = {
            "minute": dt.minute, "hour": dt.hour, "day_of_week": (dt.weekday() + 1) % 7,
            "day_of_month": dt.day, "day_of_year": dt.timetuple().tm_yday,
            "days_in_month": calendar.monthrange(dt.year, dt.month)[1], "month": dt.month, "year": dt.year,
        }[part]
    return Vector(labels, out, present.copy())


_GO_GROUP = re.compile(r"\$(\$|\{(\w+)\}|(\w+))")


def _expand(template: str, match: re.Match) -> str:
    """Go's Regexp.Expand: $1, ${1}, $name, ${name}; $$ is a literal $."""

    def repl(m: re.Match) -> str:
        if m.group(1) == "$":
            return "$"
        name = m.group(2) or m.group(3)
        try:
            group = match.group(int(name)) if name.isdigit() else match.group(name)
        except IndexError:
            return ""
        return group or ""

    return _GO_GROUP.sub(repl, template)


def _label_replace(vec: Vector, dst: str, replacement: str, src: str, regex: str) -> Vector:
    try:
        pattern = re.compile(regex, re.DOTALL)
    except re.error as exc:
        raise PromQLError(f"invalid regular expression in label_replace(): {regex}") from exc
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", dst):
        raise PromQLError(f"invalid destination label name in label_replace(): {dst}")
    labels = []
    for lab in vec.labels:
        m = pattern.fullmatch(label_value(lab, src))
        labels.append(with_label(lab, dst, _expand(replacement, m)) if m else lab)
    out = Vector(labels, vec.values, vec.present, vec.stamps)
    check_duplicates(out)
    return out


def _label_join(vec: Vector, dst: str, sep: str, sources: list[str]) -> Vector:
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", dst):
        raise PromQLError(f"invalid destination label name in label_join(): {dst}")
    labels = [with_label(lab, dst, sep.join(label_value(lab, s) for s in sources)) for lab in vec.labels]
    out = Vector(labels, vec.values, vec.present, vec.stamps)
    check_duplicates(out)
    return out


def _histogram_quantile(q: np.ndarray, vec: Vector) -> Vector:
    groups: dict[tuple, list[tuple[float, int]]] = {}
    for i, lab in enumerate(vec.labels):
        le = label_value(lab, "le")
        try:
            bound = float(le.replace("+Inf", "inf").replace("-Inf", "-inf")) if le else None
        except ValueError:
            bound = None
        if bound is None:
            continue
        key = tuple(p for p in lab if p[0] not in ("le", METRIC_NAME))
        groups.setdefault(key, []).append((bound, i))
    steps = vec.values.shape[1] if vec.values.ndim == 2 else len(q)
    labels, rows, pres = [], [], []
    for key, members in groups.items():
        bounds = np.asarray([b for b, _ in members])
        idx = [i for _, i in members]
        counts = vec.values[idx]
        present = vec.present[idx]
        out = np.full(steps, math.nan)
        any_present = present.any(axis=0)
        for t in np.flatnonzero(any_present).tolist():
            sel = present[:, t]
            out[t] = _bucket_quantile(float(q[t]), bounds[sel], counts[sel, t])
        labels.append(key)
        rows.append(out)
        pres.append(any_present)
    if not labels:
        return Vector.empty(steps)
    return Vector(labels, np.vstack(rows), np.vstack(pres))


def _bucket_quantile(q: float, bounds: np.ndarray, counts: np.ndarray) -> float:
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    order = np.argsort(bounds, kind="stable")
    bounds, counts = bounds[order], counts[order]
    if not len(bounds) or not math.isinf(bounds[-1]) or bounds[-1] < 0:
        return math.nan
    # coalesce buckets with the same upper bound
    merged_b, merged_c = [], []
    for b, c in zip(bounds.tolist(), counts.tolist(), strict=True):
        if merged_b and merged_b[-1] == b:
            merged_c[-1] += c
        else:
            merged_b.append(b)
            merged_c.append(c)
    highest = -math.inf
    for i, c in enumerate(merged_c):  # ensure monotonic counts
        if c > highest:
            highest = c
        elif c < highest:
            merged_c[i] = highest
    if len(merged_b) < 2:
        return math.nan
    observations = merged_c[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(merged_c) - 1) if merged_c[i] >= rank), len(merged_c) - 1)
    if b == len(merged_b) - 1:
        return merged_b[-2]
    if b == 0 and merged_b[0] <= 0:
        return merged_b[0]
    start, end, count = 0.0, merged_b[b], merged_c[b]
    if b > 0:
        start = merged_b[b - 1]
        count -= merged_c[b - 1]
        rank -= merged_c[b - 1]
    return start + (end - start) * (rank / count)


def _absent(engine, node, ctx, value, over_time: bool) -> Vector:
    steps = len(ctx.steps)
    if isinstance(value, Matrix):
        present = np.zeros(steps, dtype=bool)
        for s in value.series:
            lo, hi = value.windows(s)
            present |= hi > lo
    else:
        present = value.present.any(axis=0) if len(value) else np.zeros(steps, dtype=bool)
    arg = node.args[0]
    while type(arg).__name__ == "ParenExpr":
        arg = arg.expr
    if type(arg).__name__ == "MatrixSelector":
        arg = arg.vector_selector
    labels: list[tuple[str, str]] = []
    if type(arg).__name__ == "VectorSelector":
        seen: dict[str, int] = {}
        for m in arg.matchers.matchers:
            if str(m.op) == "MatchOp.Equal" and m.name != METRIC_NAME:
                seen[m.name] = seen.get(m.name, 0) + 1
                labels.append((m.name, m.value))
        labels = [p for p in labels if seen[p[0]] == 1]
    return Vector([tuple(sorted(labels))], np.ones((1, steps)), (~present)[None, :])


# --- dispatch --------------------------------------------------------------------------------


_SIMPLE = {
    "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "exp": np.exp, "sqrt": np.sqrt, "ln": np.log,
    "log2": np.log2, "log10": np.log10, "sgn": np.sign, "acos": np.arccos, "acosh": np.arccosh,
    "asin": np.arcsin, "asinh": np.arcsinh, "atan": np.arctan, "atanh": np.arctanh, "cos": np.cos,
    "cosh": np.cosh, "sin": np.sin, "sinh": np.sinh, "tan": np.tan, "tanh": np.tanh, "deg": np.degrees,
    "rad": np.radians,
}
_TIME_PARTS = {"minute", "hour", "day_of_week", "day_of_month", "day_of_year", "days_in_month", "month", "year"}


_ROLLUP_FUNCS = {"rate", "increase", "sum_over_time", "count_over_time", "avg_over_time", "min_over_time",
                 "max_over_time", "last_over_time", "present_over_time"}


def _rollup_call(engine, name: str, node, ctx) -> Vector | None:
    """Range functions answered from downsampled buckets (whole buckets whose last sample falls
    in the window), or None when the query must read raw samples."""
    arg = node
    while type(arg).__name__ == "ParenExpr":
        arg = arg.expr
    if type(arg).__name__ != "MatrixSelector":
        return None
    range_ms = round(arg.range.total_seconds() * 1000)
    if range_ms < ctx.resolution:
        return None
    selector = arg.vector_selector
    times = engine.eval_times(selector, ctx)
    rows = engine.fetch_rollups(selector, ctx, int(times.min()) - range_ms, int(times.max()))
    labels, values, presents = [], [], []
    for r in rows:
        lo = np.searchsorted(r.last_ms, times - range_ms, side="left")
        hi = np.searchsorted(r.last_ms, times, side="right")
        count = _prefix(r.count.astype(float))
        n_samples = count[hi] - count[lo]
        present = hi > lo
        with np.errstate(all="ignore"):
            if name in ("rate", "increase"):
                inc = _prefix(r.increase)
                value = inc[hi] - inc[lo]
                if name == "rate":
                    value = value / (range_ms / 1000)
                present &= n_samples >= 2
            elif name in ("sum_over_time", "avg_over_time"):
                total = _prefix(r.sum)
                value = total[hi] - total[lo]
                if name == "avg_over_time":
                    value = value / np.maximum(n_samples, 1)
            elif name == "count_over_time":
                value = n_samples
            elif name in ("min_over_time", "max_over_time"):
                reduce = np.fmin if name == "min_over_time" else np.fmax
                source = r.min if name == "min_over_time" else r.max
                value = range_reduce(source, lo, hi, reduce)
            elif name == "last_over_time":
                value = r.last[np.maximum(hi - 1, 0)]
            else:
                value = np.ones(len(times))
        if present.any():
            labels.append(r.labels if name == "last_over_time" else drop_name(r.labels))
            values.append(value)
            presents.append(present)
    if not labels:
        return Vector.empty(len(ctx.steps))
    return Vector(labels, np.vstack(values), np.vstack(presents))


def call(engine, node, ctx):
    name = node.func.name
    args = node.args
    n = len(ctx.steps)
    if ctx.resolution and name in _ROLLUP_FUNCS:
        answered = _rollup_call(engine, name, args[0], ctx)
        if answered is not None:
            return answered
    if name in ("rate", "increase", "delta"):
        return _extrapolated_rate(_matrix_arg(engine, args[0], ctx, name), name != "delta", name == "rate")
    if name in ("irate", "idelta"):
        return _instant_rate(_matrix_arg(engine, args[0], ctx, name), name == "irate")
    if name in ("sum_over_time", "avg_over_time", "count_over_time"):
        return _sum_windows(_matrix_arg(engine, args[0], ctx, name), name.split("_")[0])
    if name == "min_over_time":
        return _minmax_windows(_matrix_arg(engine, args[0], ctx, name), np.fmin)
    if name == "max_over_time":
        return _minmax_windows(_matrix_arg(engine, args[0], ctx, name), np.fmax)
    if name == "last_over_time":
        return _over_time(_matrix_arg(engine, args[0], ctx, name),
                          lambda s, lo, hi: (s.values[np.maximum(hi - 1, 0)], hi > lo), keep_name=True)
    if name == "present_over_time":
        return _over_time(_matrix_arg(engine, args[0], ctx, name), lambda s, lo, hi: (np.ones(len(lo)), hi > lo))
    if name in ("stddev_over_time", "stdvar_over_time"):
        root = name == "stddev_over_time"
        return _windowed(_matrix_arg(engine, args[0], ctx, name),
                         lambda t, v, i: math.sqrt(_variance(v.tolist())) if root else _variance(v.tolist()))
    if name == "quantile_over_time":
        q = _scalar_arg(engine, args[0], ctx, name)
        return _windowed(_matrix_arg(engine, args[1], ctx, name), lambda t, v, i: quantile(float(q[i]), v))
    if name == "changes":
        return _changes(_matrix_arg(engine, args[0], ctx, name), resets=False)
    if name == "resets":
        return _changes(_matrix_arg(engine, args[0], ctx, name), resets=True)
    if name == "deriv":
        return _windowed(_matrix_arg(engine, args[0], ctx, name),
                         lambda t, v, i: _regression(t, v, int(t[0]))[0], min_samples=2)
    if name == "predict_linear":
        matrix = _matrix_arg(engine, args[0], ctx, name)
        ahead = _scalar_arg(engine, args[1], ctx, name)

        def predict(t, v, i):
            slope, intercept = _regression(t, v, int(matrix.eval_times[i]))
            return slope * float(ahead[i]) + intercept

        return _windowed(matrix, predict, min_samples=2)
    if name in ("holt_winters", "double_exponential_smoothing"):
        matrix = _matrix_arg(engine, args[0], ctx, name)
        sf = _scalar_arg(engine, args[1], ctx, name)
        tf = _scalar_arg(engine, args[2], ctx, name)
        if not (0 < sf[0] < 1):
            raise ExecutionError(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {sf[0]:f}")
        if not (0 < tf[0] < 1):
            raise ExecutionError(f"invalid trend factor. Expected: 0 < tf < 1, got: {tf[0]:f}")
        return _windowed(matrix, lambda t, v, i: _holt_winters(v.tolist(), float(sf[i]), float(tf[i])),
                         min_samples=2)
    if name == "absent_over_time":
        return _absent(engine, node, ctx, _matrix_arg(engine, args[0], ctx, name), True)
    if name == "absent":
        return _absent(engine, node, ctx, _vector_arg(engine, args[0], ctx, name), False)
    if name in _SIMPLE:
        return _map(_vector_arg(engine, args[0], ctx, name), _SIMPLE[name])
    if name == "round":
        vec = _vector_arg(engine, args[0], ctx, name)
        to = _scalar_arg(engine, args[1], ctx, name) if len(args) > 1 else np.ones(n)
        return _map(vec, lambda v: _round(v, to[None, :]))
    if name in ("clamp", "clamp_min", "clamp_max"):
        vec = _vector_arg(engine, args[0], ctx, name)
        if name == "clamp":
            low, high = _scalar_arg(engine, args[1], ctx, name), _scalar_arg(engine, args[2], ctx, name)
            out = _map(vec, lambda v: np.maximum(low[None, :], np.minimum(high[None, :], v)))
            out.present &= (low <= high)[None, :] if len(out) else out.present
            return out
        bound = _scalar_arg(engine, args[1], ctx, name)[None, :]
        fn = np.maximum if name == "clamp_min" else np.minimum
        return _map(vec, lambda v: fn(bound, v))
    if name == "timestamp":
        vec = _vector_arg(engine, args[0], ctx, name)
        stamps = vec.stamps if vec.stamps is not None else np.broadcast_to(ctx.steps, vec.values.shape)
        return Vector([drop_name(lab) for lab in vec.labels], stamps / 1000.0, vec.present.copy())
    if name == "time":
        return Scalar(ctx.steps / 1000.0)
    if name == "pi":
        return Scalar(np.full(n, math.pi))
    if name == "vector":
        return Vector([()], _scalar_arg(engine, args[0], ctx, name)[None, :].copy(), np.ones((1, n), dtype=bool))
    if name == "scalar":
        vec = _vector_arg(engine, args[0], ctx, name)
        out = np.full(n, math.nan)
        if len(vec):
            single = vec.present.sum(axis=0) == 1
            picked = np.where(vec.present, vec.values, 0.0).sum(axis=0)
            out = np.where(single, picked, math.nan)
        return Scalar(out)
    if name in ("sort", "sort_desc"):
        vec = _vector_arg(engine, args[0], ctx, name).compact()
        if n != 1 or not len(vec):
            return vec
        values = vec.values[:, 0]
        # NaN last in both orders, as Prometheus sorts
        key = np.where(np.isnan(values), np.inf if name == "sort" else -np.inf, values)
        order = np.argsort(key, kind="stable") if name == "sort" else np.argsort(-key, kind="stable")
        return vec.select(order)
    if name == "label_replace":
        vec = _vector_arg(engine, args[0], ctx, name)
        texts = [engine.eval(a, ctx) for a in args[1:]]
        if not all(isinstance(t, String) for t in texts):
            raise PromQLError("label_replace() expects string arguments")
        return _label_replace(vec, *(t.value for t in texts))
    if name == "label_join":
        vec = _vector_arg(engine, args[0], ctx, name)
        texts = [engine.eval(a, ctx) for a in args[1:]]
        if not all(isinstance(t, String) for t in texts):
            raise PromQLError("label_join() expects string arguments")
        return _label_join(vec, texts[0].value, texts[1].value, [t.value for t in texts[2:]])
    if name == "histogram_quantile":
        q = _scalar_arg(engine, args[0], ctx, name)
        return _histogram_quantile(q, _vector_arg(engine, args[1], ctx, name))
    if name in _TIME_PARTS:
        vec = _vector_arg(engine, args[0], ctx, name) if args else None
        return _time_part(vec, ctx.steps, name, n)
    raise Unsupported(f"unsupported PromQL function: {name}()")


__all__ = ["ExecutionError", "call", "check_result", "quantile"]
