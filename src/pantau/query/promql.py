"""PromQL over the store interface (the engine knows only `pantau.store.base.Store`).

This is the engine's foundation: parsing with `promql-parser`, selector evaluation with
Prometheus's lookback delta (5m) and staleness markers, `offset` and `@`. Every construct
not yet supported fails with `Unsupported`, naming it, never with a wrong answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import promql_parser

from pantau.model import STALE_NAN_BITS, Labels
from pantau.store.base import Matcher, Store

LOOKBACK_MS = 5 * 60 * 1000

_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


class PromQLError(ValueError):
    """A query that cannot be parsed or evaluated (Prometheus `bad_data`)."""


class Unsupported(PromQLError):
    pass


@dataclass(slots=True)
class InstantSample:
    labels: Labels
    timestamp_ms: int
    value: float


@dataclass(slots=True)
class RangeSeries:
    labels: Labels
    timestamps_ms: np.ndarray
    values: np.ndarray


def parse(query: str):
    try:
        return promql_parser.parse(query)
    except (ValueError, TypeError) as exc:
        raise PromQLError(f"parse error: {exc}") from None


def selector_matchers(selector) -> list[Matcher]:
    """Label matchers of a parsed vector selector (its metric name included)."""
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


def _is_stale(values: np.ndarray) -> np.ndarray:
    return values.view(np.uint64) == STALE_NAN_BITS


def _eval_time(selector, t_ms: int, start_ms: int, end_ms: int) -> int:
    at = getattr(selector, "at", None)
    if at is not None:
        text = str(at).strip()
        if text in ("@ start()", "@ start"):
            t_ms = start_ms
        elif text in ("@ end()", "@ end"):
            t_ms = end_ms
        else:
            t_ms = round(float(text.lstrip("@ ").strip()) * 1000)
    offset: timedelta | None = getattr(selector, "offset", None)
    if offset is not None:
        t_ms -= int(offset.total_seconds() * 1000)
    return t_ms


class Engine:
    def __init__(self, store: Store, lookback_ms: int = LOOKBACK_MS) -> None:
        self.store = store
        self.lookback_ms = lookback_ms

    def instant(self, query: str, t_ms: int) -> tuple[str, list]:
        """Evaluate at one instant. Returns (resultType, result)."""
        node = parse(query)
        kind = type(node).__name__
        if kind == "VectorSelector":
            return "vector", self._vector(node, t_ms, t_ms, t_ms)
        if kind == "MatrixSelector":
            return "matrix", self._matrix(node, t_ms)
        if kind == "NumberLiteral":
            return "scalar", [t_ms, float(node.val)]
        if kind == "StringLiteral":
            return "string", [t_ms, node.val]
        raise Unsupported(f"unsupported PromQL construct: {kind} ({query!r}); "
                          "pantau evaluates selectors only for now")

    def range(self, query: str, start_ms: int, end_ms: int, step_ms: int) -> list[RangeSeries]:
        node = parse(query)
        kind = type(node).__name__
        if kind != "VectorSelector":
            raise Unsupported(f"unsupported PromQL construct in a range query: {kind} ({query!r})")
        out: dict[Labels, tuple[list[int], list[float]]] = {}
        for t in range(start_ms, end_ms + 1, step_ms):
            for s in self._vector(node, t, start_ms, end_ms):
                ts, vs = out.setdefault(s.labels, ([], []))
                ts.append(t)
                vs.append(s.value)
        return [RangeSeries(labels, np.asarray(ts, dtype=np.int64), np.asarray(vs))
                for labels, (ts, vs) in sorted(out.items())]

    def _vector(self, selector, t_ms: int, start_ms: int, end_ms: int) -> list[InstantSample]:
        t = _eval_time(selector, t_ms, start_ms, end_ms)
        out = []
        for series in self.store.select_samples(selector_matchers(selector), t - self.lookback_ms + 1, t):
            if not len(series.values):
                continue
            last = series.values[-1:]
            if _is_stale(last)[0]:
                continue
            out.append(InstantSample(series.labels, t_ms, float(last[0])))
        return out

    def _matrix(self, node, t_ms: int) -> list[RangeSeries]:
        selector = node.vector_selector
        t = _eval_time(selector, t_ms, t_ms, t_ms)
        range_ms = int(node.range.total_seconds() * 1000)
        out = []
        for series in self.store.select_samples(selector_matchers(selector), t - range_ms + 1, t):
            keep = ~_is_stale(series.values)
            if keep.any():
                out.append(RangeSeries(series.labels, series.timestamps_ms[keep], series.values[keep]))
        return out
