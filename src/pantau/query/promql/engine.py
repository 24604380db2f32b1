"""The PromQL engine: evaluates a parsed query over the store interface.

Like Prometheus's engine it knows only the storage interface (`Store.select_samples`), and it
follows Prometheus 2.x semantics (the version Debian ships and pantau is tested against):
instant selectors take the newest sample in [t - 5m, t], range selectors the samples in
[t - range, t], staleness markers end a series, `offset` and `@` move the evaluation time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import promql_parser

from pantau.model import STALE_NAN_BITS
from pantau.query.promql import aggregate, binary, functions
from pantau.query.promql.values import (
    Matrix,
    PromQLError,
    QueryTimeout,
    RangeSeries,
    Scalar,
    String,
    TooManySamples,
    Unsupported,
    Vector,
    merge_same_labels,
)
from pantau.store.base import Matcher, SampleColumns, SeriesSamples, Store

LOOKBACK_MS = 5 * 60 * 1000
DEFAULT_SUBQUERY_STEP_MS = 60 * 1000
# Ranges at least this long may be answered from downsampled data (see resolution_for).
DOWNSAMPLE_AFTER_MS = 24 * 3600 * 1000
MAX_SAMPLES = 50_000_000
TIMEOUT_S = 120.0

_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


# Prometheus 2.x's name for double exponential smoothing (3.x renamed it); the parser knows
# only the new name, so the old one is taught to it.
promql_parser.register_extra_functions([promql_parser.Function(
    "holt_winters", [promql_parser.ValueType.Matrix, promql_parser.ValueType.Scalar,
                     promql_parser.ValueType.Scalar], promql_parser.ValueType.Vector)])


def parse(query: str):
    try:
        return promql_parser.parse(query)
    except (ValueError, TypeError) as exc:
        raise PromQLError(f"parse error: {exc}") from None


def selector_matchers(selector) -> list[Matcher]:
    """Label matchers of a parsed vector selector, its metric name included."""
    matchers: list[Matcher] = []
    if selector.name:
        matchers.append(Matcher("__name__", "=", selector.name))
    for m in selector.matchers.matchers:
        try:
            matchers.append(Matcher(m.name, _OPS[str(m.op)], m.value))
        except ValueError as exc:
            raise PromQLError(str(exc)) from None
    if getattr(selector.matchers, "or_matchers", None):
        raise Unsupported("unsupported PromQL construct: 'or' inside a selector")
    if not any(not m.matches_empty for m in matchers):
        raise PromQLError("vector selector must contain at least one non-empty matcher")
    return matchers


def parse_selector(text: str) -> list[Matcher]:
    """Matchers of a series selector as used by `match[]` parameters."""
    node = parse(text)
    if type(node).__name__ != "VectorSelector":
        raise PromQLError(f"invalid series selector {text!r}: expected a vector selector")
    return selector_matchers(node)


def _ms(delta: timedelta | None) -> int:
    return 0 if delta is None else round(delta.total_seconds() * 1000)


@dataclass
class _Context:
    steps: np.ndarray  # evaluation times (ms)
    start: int
    end: int
    deadline: float
    samples: int = 0
    fetched: dict = field(default_factory=dict)
    # > 0: read downsampled data at this resolution (long-range queries with large steps)
    resolution: int = 0


@dataclass
class InstantResult:
    kind: str  # "vector" | "matrix" | "scalar" | "string"
    value: object
    time_ms: int


class Engine:
    def __init__(self, store: Store, lookback_ms: int = LOOKBACK_MS, max_samples: int = MAX_SAMPLES,
                 timeout_s: float = TIMEOUT_S, downsampling: bool = True) -> None:
        self.store = store
        self.downsampling = downsampling
        self.lookback_ms = lookback_ms
        self.max_samples = max_samples
        self.timeout_s = timeout_s

    # --- entry points ----------------------------------------------------------------------

    def instant(self, query: str, t_ms: int) -> InstantResult:
        node = parse(query)
        ctx = self._context(np.asarray([t_ms], dtype=np.int64), t_ms, t_ms)
        value = self.eval(node, ctx)
        if isinstance(value, Vector):
            value = value.compact()
            functions.check_result(value)
            if _sorted_by(node) is None and len(value):
                value = value.select(sorted(range(len(value.labels)), key=lambda i: value.labels[i]))
            return InstantResult("vector", value, t_ms)
        if isinstance(value, Matrix):
            return InstantResult("matrix", value, t_ms)
        if isinstance(value, Scalar):
            return InstantResult("scalar", float(value.values[0]), t_ms)
        return InstantResult("string", value.value, t_ms)

    def range(self, query: str, start_ms: int, end_ms: int, step_ms: int,
              max_resolution_ms: int | None = None) -> Vector:
        """Evaluate at every step. Long ranges with large steps read downsampled data unless
        `max_resolution_ms` is 0 (raw only); it caps the resolution used."""
        node = parse(query)
        steps = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
        ctx = self._context(steps, start_ms, end_ms)
        if self.downsampling and end_ms - start_ms >= DOWNSAMPLE_AFTER_MS:
            ctx.resolution = resolution_for(step_ms)
        if max_resolution_ms is not None:
            ctx.resolution = min(ctx.resolution, max_resolution_ms) if max_resolution_ms else 0
            if ctx.resolution and ctx.resolution not in (60_000, 3_600_000):
                ctx.resolution = 60_000
        value = self.eval(node, ctx)
        if isinstance(value, Scalar):
            return Vector([()], value.values[None, :], np.ones((1, len(steps)), dtype=bool))
        if isinstance(value, Matrix | String):
            raise PromQLError(f"invalid expression type {_type_name(value)!r} for range query, "
                              "must be Scalar or instant Vector")
        value = merge_same_labels(value.compact())
        order = sorted(range(len(value.labels)), key=lambda i: value.labels[i])
        return value.select(order)

    def _context(self, steps: np.ndarray, start: int, end: int) -> _Context:
        return _Context(steps, start, end, time.monotonic() + self.timeout_s)

    # --- evaluation ------------------------------------------------------------------------

    def eval(self, node, ctx: _Context):
        if time.monotonic() > ctx.deadline:
            raise QueryTimeout(f"query timed out in expression evaluation (limit {self.timeout_s:g}s)")
        kind = type(node).__name__
        if kind == "NumberLiteral":
            return Scalar(np.full(len(ctx.steps), float(node.val)))
        if kind == "StringLiteral":
            return String(node.val)
        if kind == "ParenExpr":
            return self.eval(node.expr, ctx)
        if kind == "UnaryExpr":
            value = self.eval(node.expr, ctx)
            return binary.negate(value)
        if kind == "VectorSelector":
            return self.vector_selector(node, ctx)
        if kind == "MatrixSelector":
            return self.matrix_selector(node, ctx)
        if kind == "SubqueryExpr":
            return self.subquery(node, ctx)
        if kind == "Call":
            return functions.call(self, node, ctx)
        if kind == "AggregateExpr":
            return aggregate.evaluate(self, node, ctx)
        if kind == "BinaryExpr":
            return binary.evaluate(self, node, ctx)
        raise Unsupported(f"unsupported PromQL construct: {kind}")

    def eval_times(self, node, ctx: _Context) -> np.ndarray:
        """Evaluation times of a selector or subquery after `@` and `offset`."""
        at = getattr(node, "at", None)
        times = ctx.steps
        if at is not None:
            at_type = str(at.type)
            if at_type.endswith("Start"):
                fixed = ctx.start
            elif at_type.endswith("End"):
                fixed = ctx.end
            else:
                fixed = round(at.at.timestamp() * 1000)
            times = np.full(len(ctx.steps), fixed, dtype=np.int64)
        return times - _ms(getattr(node, "offset", None))

    def fetch(self, selector, ctx: _Context, start: int, end: int) -> list[RangeSeries]:
        matchers = selector_matchers(selector)
        key = (tuple((m.name, m.op, m.value) for m in matchers), start, end)
        cached = ctx.fetched.get(key)
        if cached is not None:
            return cached
        series = []
        for s in self.store.select_samples(matchers, start, end):
            ctx.samples += len(s.values)
            series.append(RangeSeries(s.labels, s.timestamps_ms, s.values))
        if ctx.samples > self.max_samples:
            raise TooManySamples("query processing would load too many samples into memory in query execution")
        ctx.fetched[key] = series
        return series

    def fetch_columns(self, selector, ctx: _Context, start: int, end: int) -> SampleColumns:
        """`fetch` for instant selectors: the samples laid end to end (no object per series)."""
        key = ("columns", tuple((m.name, m.op, m.value) for m in selector_matchers(selector)), start, end)
        cached = ctx.fetched.get(key)
        if cached is None:
            cached = ctx.fetched[key] = self.store.select_sample_columns(selector_matchers(selector), start, end)
            ctx.samples += len(cached.values)
            if ctx.samples > self.max_samples:
                raise TooManySamples("query processing would load too many samples into memory in query execution")
        return cached

    def fetch_rollups(self, selector, ctx: _Context, start: int, end: int) -> list:
        key = ("rollup", ctx.resolution, tuple((m.name, m.op, m.value) for m in selector_matchers(selector)),
               start, end)
        cached = ctx.fetched.get(key)
        if cached is None:
            cached = ctx.fetched[key] = self.store.select_rollups(selector_matchers(selector), start, end,
                                                                 ctx.resolution)
            ctx.samples += sum(len(s.bucket_ms) for s in cached)
            if ctx.samples > self.max_samples:
                raise TooManySamples("query processing would load too many samples into memory in query execution")
        return cached

    def vector_selector(self, node, ctx: _Context) -> Vector:
        times = self.eval_times(node, ctx)
        if ctx.resolution:
            rows = self.fetch_rollups(node, ctx, int(times.min()) - self.lookback_ms, int(times.max()))
            # each bucket's first and last sample, in time order: exact at bucket boundaries
            cols = SampleColumns.from_series([
                SeriesSamples(r.labels, np.column_stack((r.first_ms, r.last_ms)).ravel(),
                              np.column_stack((r.first, r.last)).ravel()) for r in rows])
        else:
            cols = self.fetch_columns(node, ctx, int(times.min()) - self.lookback_ms, int(times.max()))
        values, present, stamps = last_samples(cols, times, self.lookback_ms)
        return Vector(list(cols.labels), values, present, stamps)

    def matrix_selector(self, node, ctx: _Context) -> Matrix:
        selector = node.vector_selector
        times = self.eval_times(selector, ctx)
        range_ms = _ms(node.range)
        raw = self.fetch(selector, ctx, int(times.min()) - range_ms, int(times.max()))
        series = []
        for s in raw:
            keep = s.values.view(np.uint64) != STALE_NAN_BITS
            if keep.any():
                series.append(RangeSeries(s.labels, s.timestamps[keep], s.values[keep]) if not keep.all() else s)
        return Matrix(series, times, range_ms)

    def subquery(self, node, ctx: _Context) -> Matrix:
        """`expr[range:step]`: the inner expression evaluated at step-aligned times covering
        every window, as Prometheus does (times are multiples of the step)."""
        times = self.eval_times(node, ctx)
        range_ms = _ms(node.range)
        step_ms = _ms(node.step) or DEFAULT_SUBQUERY_STEP_MS
        lo = int(times.min()) - range_ms
        first = lo - lo % step_ms
        if first < lo:
            first += step_ms
        inner_steps = np.arange(first, int(times.max()) + 1, step_ms, dtype=np.int64)
        if not len(inner_steps):
            return Matrix([], times, range_ms)
        inner_ctx = _Context(inner_steps, ctx.start, ctx.end, ctx.deadline, ctx.samples, ctx.fetched,
                             resolution_for(step_ms) if ctx.resolution else 0)
        value = self.eval(node.expr, inner_ctx)
        ctx.samples = inner_ctx.samples
        if isinstance(value, Scalar):
            value = Vector([()], value.values[None, :], np.ones((1, len(inner_steps)), dtype=bool))
        if not isinstance(value, Vector):
            raise PromQLError("subquery is only allowed on instant vector, got "
                              f"{_type_name(value)}")
        value = merge_same_labels(value)
        series = []
        for i, labels in enumerate(value.labels):
            keep = value.present[i]
            if keep.any():
                series.append(RangeSeries(labels, inner_steps[keep], value.values[i][keep]))
        return Matrix(series, times, range_ms)


def last_samples(cols: SampleColumns, times: np.ndarray, lookback_ms: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every series and evaluation time, the newest sample in [t - lookback, t] (what an
    instant selector sees): values, present, sample timestamps, each (series, times).

    All series at once: keys (series, time) sort globally over the samples laid end to end,
    so one `searchsorted` answers every (series, time) pair. Done series by series, the
    NumPy calls' overhead (~10 us per series) was most of a one-step query over thousands of
    series (the anomaly engine's read of each new step)."""
    n, m = len(cols), len(times)
    ts, vs, offsets = cols.timestamps_ms, cols.values, cols.offsets
    if not n or not m or not len(ts):
        return np.zeros((n, m)), np.zeros((n, m), dtype=bool), np.zeros((n, m), dtype=np.int64)
    starts = offsets[:-1]
    lens = np.diff(offsets)
    lo = min(int(ts.min()), int(times.min()))
    span = max(int(ts.max()), int(times.max())) - lo + 1
    if n == 1:  # one series (an alert rule's): the keys would be its timestamps
        idx = (np.searchsorted(ts, times, side="right") - 1)[None, :]
    elif span * n < 2**62:
        rows = np.arange(n, dtype=np.int64)
        keys = np.repeat(rows * span, lens) + (ts - lo)
        idx = np.searchsorted(keys, (rows * span)[:, None] + (times - lo)[None, :], side="right") - 1
    else:  # keys would overflow: one search per series
        idx = np.stack([np.searchsorted(ts[a:b], times, side="right") - 1 + a
                        for a, b in zip(starts.tolist(), offsets[1:].tolist(), strict=True)])
    ok = idx >= starts[:, None]
    safe = np.where(ok, idx, 0)
    stamps = ts[safe]
    values = vs[safe]
    ok &= stamps >= times - lookback_ms
    ok &= values.view(np.uint64) != STALE_NAN_BITS
    return values, ok, stamps


def resolution_for(step_ms: int) -> int:
    """Downsampled resolution for a long range query's step: hourly buckets from hourly
    steps on, minute buckets from five-minute steps on."""
    if step_ms >= 3_600_000:
        return 3_600_000
    if step_ms >= 5 * 60_000:
        return 60_000
    return 0


def _type_name(value) -> str:
    return {"Vector": "vector", "Matrix": "range vector", "Scalar": "scalar",
            "String": "string"}.get(type(value).__name__, type(value).__name__)


def _sorted_by(node):
    """The sort function at the top of a query (its order is kept in instant results)."""
    while type(node).__name__ == "ParenExpr":
        node = node.expr
    if type(node).__name__ == "Call" and node.func.name in ("sort", "sort_desc"):
        return node.func.name
    if type(node).__name__ == "AggregateExpr" and str(node.op) in ("topk", "bottomk"):
        return str(node.op)
    return None

