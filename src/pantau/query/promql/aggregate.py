"""PromQL aggregation operators (`sum by (job) (...)` and friends), for all steps at once."""

from __future__ import annotations

import math

import numpy as np

from pantau.model import METRIC_NAME, Labels
from pantau.query.promql.functions import quantile
from pantau.query.promql.values import PromQLError, Scalar, String, Unsupported, Vector, drop_name, label_value


def _group_key(labels: Labels, by: bool, names: set[str]) -> Labels:
    if by:
        return tuple(p for p in labels if p[0] in names)
    return tuple(p for p in labels if p[0] not in names and p[0] != METRIC_NAME)


def format_value(v: float) -> str:
    """A value as Go's strconv.FormatFloat(v, 'f', -1, 64) writes it (count_values labels)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return np.format_float_positional(v, trim="-")


def evaluate(engine, node, ctx) -> Vector:
    op = str(node.op)
    vec = engine.eval(node.expr, ctx)
    if not isinstance(vec, Vector):
        raise PromQLError(f"expected instant vector in aggregation {op}, got {type(vec).__name__.lower()}")
    steps = len(ctx.steps)
    modifier = node.modifier
    by = modifier is None or str(modifier.type).endswith("By")
    names = set(modifier.labels) if modifier is not None else set()
    param = engine.eval(node.param, ctx) if node.param is not None else None

    if op in ("topk", "bottomk"):
        return _topk(vec, param, by, names, op == "topk", steps)
    if op == "count_values":
        if not isinstance(param, String):
            raise PromQLError("count_values() expects a string label name")
        return _count_values(vec, param.value, by, names, steps)

    groups: dict[Labels, list[int]] = {}
    for i, labels in enumerate(vec.labels):
        groups.setdefault(_group_key(labels, by, names), []).append(i)
    out_labels, rows, pres = [], [], []
    for key, members in groups.items():
        values = vec.values[members]
        present = vec.present[members]
        count = present.sum(axis=0)
        any_present = count > 0
        if not any_present.any():
            continue
        masked = np.where(present, values, 0.0)
        with np.errstate(all="ignore"):
            if op == "sum":
                result = masked.sum(axis=0)
            elif op == "avg":
                result = masked.sum(axis=0) / np.maximum(count, 1)
                if not np.isfinite(result).all():
                    result = _incremental_mean(values, present)
            elif op == "count":
                result = count.astype(float)
            elif op == "group":
                result = np.ones(steps)
            elif op in ("min", "max"):
                fill = np.inf if op == "min" else -np.inf
                data = np.where(present & ~np.isnan(values), values, fill)
                result = data.min(axis=0) if op == "min" else data.max(axis=0)
                all_nan = ~(present & ~np.isnan(values)).any(axis=0)
                result = np.where(all_nan, math.nan, result)
            elif op in ("stddev", "stdvar"):
                mean = masked.sum(axis=0) / np.maximum(count, 1)
                var = (np.where(present, (values - mean) ** 2, 0.0)).sum(axis=0) / np.maximum(count, 1)
                result = np.sqrt(var) if op == "stddev" else var
            elif op == "quantile":
                if not isinstance(param, Scalar):
                    raise PromQLError("quantile() expects a scalar parameter")
                result = np.full(steps, math.nan)
                for t in np.flatnonzero(any_present).tolist():
                    result[t] = quantile(float(param.values[t]), values[present[:, t], t])
            else:
                raise Unsupported(f"unsupported PromQL aggregation: {op}")
        out_labels.append(key)
        rows.append(result)
        pres.append(any_present)
    if not out_labels:
        return Vector.empty(steps)
    return Vector(out_labels, np.vstack(rows), np.vstack(pres))


def _incremental_mean(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Prometheus's avg: a running mean that does not overflow where the sum would."""
    out = np.zeros(values.shape[1])
    for t in range(values.shape[1]):
        mean, count = 0.0, 0
        for v in values[present[:, t], t].tolist():
            count += 1
            if math.isinf(mean):
                if math.isinf(v) and (mean > 0) == (v > 0):
                    continue
                if not math.isinf(v) and not math.isnan(v):
                    continue
            mean += v / count - mean / count
        out[t] = mean
    return out


def _topk(vec: Vector, param, by: bool, names: set[str], largest: bool, steps: int) -> Vector:
    if not isinstance(param, Scalar):
        raise PromQLError("topk()/bottomk() expect a scalar parameter")
    groups: dict[Labels, list[int]] = {}
    for i, labels in enumerate(vec.labels):
        groups.setdefault(_group_key(labels, by, names), []).append(i)
    keep = np.zeros(vec.present.shape, dtype=bool)
    for members in groups.values():
        idx = np.asarray(members)
        for t in range(steps):
            k = param.values[t]
            if math.isnan(k) or k < 1:
                continue
            k = int(min(k, 2**62))
            rows = idx[vec.present[idx, t]]
            if not len(rows):
                continue
            vals = vec.values[rows, t]
            # NaN ranks last for topk and for bottomk (Prometheus replaces it first)
            key = np.where(np.isnan(vals), -np.inf if largest else np.inf, vals)
            order = np.argsort(-key if largest else key, kind="stable")
            keep[rows[order[:k]], t] = True
    out = Vector(list(vec.labels), vec.values, keep, vec.stamps)
    return out.compact()


def _count_values(vec: Vector, label: str, by: bool, names: set[str], steps: int) -> Vector:
    if not label or not (label[0].isalpha() or label[0] == "_") or not all(c.isalnum() or c == "_" for c in label):
        raise PromQLError(f"invalid label name {label!r}")
    counts: dict[Labels, np.ndarray] = {}
    for i, labels in enumerate(vec.labels):
        base = [p for p in _group_key(labels, by, names) if p[0] != label]
        for t in np.flatnonzero(vec.present[i]).tolist():
            key = tuple(sorted([*base, (label, format_value(float(vec.values[i, t])))]))
            row = counts.get(key)
            if row is None:
                row = counts[key] = np.zeros(steps)
            row[t] += 1
    if not counts:
        return Vector.empty(steps)
    labels = list(counts)
    values = np.vstack([counts[k] for k in labels])
    return Vector(labels, values, values > 0)


__all__ = ["drop_name", "evaluate", "format_value", "label_value"]
